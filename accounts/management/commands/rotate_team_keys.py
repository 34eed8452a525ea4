"""Re-encrypt every team's Stability key with the newest of STUDIO_FERNET_KEYS: step 2 of the rotation
described in accounts/crypto.py."""

from django.core.management.base import BaseCommand, CommandError

from accounts.services.keys import team_keys_rotate


class Command(BaseCommand):
    help = "Re-encrypt every team's Stability key with the first (newest) key of STUDIO_FERNET_KEYS."

    def handle(self, *args: object, **options: object) -> None:
        result = team_keys_rotate()
        noun = "key" if result.rotated == 1 else "keys"
        self.stdout.write(f"Re-encrypted {result.rotated} team {noun} with the newest Fernet key.")
        if result.unreadable:
            ids = ", ".join(str(pk) for pk in result.unreadable)
            raise CommandError(
                f"{len(result.unreadable)} team key(s) could not be decrypted with any key in "
                f"STUDIO_FERNET_KEYS and were left as they are (team ids: {ids}). Add the key that sealed "
                "them and run this again, or have the teams set their keys again."
            )
