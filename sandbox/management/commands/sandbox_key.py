from django.core.management.base import BaseCommand, CommandParser

from sandbox.services import key_create


class Command(BaseCommand):
    help = "Create a sandbox API key with credits and print only the key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--credits", type=float, required=True, help="Credits for the key's organization."
        )
        parser.add_argument("--email", default="sandbox@example.com", help="The account the key belongs to.")

    def handle(self, *args: object, credits: float, email: str, **options: object) -> None:
        if credits < 0:
            self.stderr.write("--credits must not be negative.")
            raise SystemExit(2)
        self.stdout.write(key_create(credits=credits, email=email))
