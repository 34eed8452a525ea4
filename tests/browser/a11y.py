"""axe-core, run inside a Playwright page: the accessibility rules every screen must pass."""

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE_SCRIPT = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"

# WCAG 2.0/2.1 levels A and AA, plus the best-practice rules that say whether a page can be navigated
# by its landmarks (a screen reader's table of contents).
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BEST_PRACTICES = [
    "region",
    "landmark-banner-is-top-level",
    "landmark-complementary-is-top-level",
    "landmark-contentinfo-is-top-level",
    "landmark-main-is-top-level",
    "landmark-no-duplicate-banner",
    "landmark-no-duplicate-contentinfo",
    "landmark-no-duplicate-main",
    "landmark-one-main",
    "landmark-unique",
    "page-has-heading-one",
    "bypass",
]


@cache
def _axe_source() -> str:
    if not AXE_SCRIPT.exists():
        raise RuntimeError(f"{AXE_SCRIPT} is missing: run `make node_modules/.installed`.")
    return AXE_SCRIPT.read_text()


def axe_violations(page: Page, *, exclude: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The axe-core violations on the page as it is now; `exclude` lists CSS selectors to leave out."""
    # Evaluated through the DevTools protocol, so the page's CSP (no inline scripts) does not apply.
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    return page.evaluate(
        """async ({exclude, tags, rules}) => {
            const context = exclude.length
                ? {include: [document], exclude: exclude.map((selector) => [selector])}
                : document;
            const options = {
                runOnly: {type: "tag", values: tags},
                rules: Object.fromEntries(rules.map((rule) => [rule, {enabled: true}])),
                resultTypes: ["violations"],
            };
            const result = await axe.run(context, options);
            return result.violations.map((v) => ({
                id: v.id,
                impact: v.impact,
                help: v.help,
                helpUrl: v.helpUrl,
                nodes: v.nodes.map((node) => ({
                    target: node.target.map(String),
                    html: node.html,
                    summary: node.failureSummary,
                })),
            }));
        }""",
        {"exclude": list(exclude), "tags": WCAG_TAGS, "rules": BEST_PRACTICES},
    )


def format_violations(violations: list[dict[str, Any]]) -> str:
    """One readable block per violation, for an assertion message."""
    lines = [f"{len(violations)} accessibility violation(s):"]
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:8]:
            summary = " ".join((node.get("summary") or "").split())
            lines.append(f"    {' '.join(node['target'])}: {node['html'][:160]}")
            if summary:
                lines.append(f"      {summary[:300]}")
        if len(violation["nodes"]) > 8:
            lines.append(f"    … and {len(violation['nodes']) - 8} more")
    return "\n".join(lines)
