// Job cards: how a running job reaches the page.
