"""manage.py token create NAME --scope ingest|read | token list | token revoke ID"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.models import ApiToken


class Command(BaseCommand):
    help = "Create, list and revoke API tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a token; its plaintext is printed once, alone on the last line.")
        create.add_argument("name")
        create.add_argument("--scope", choices=[c.value for c in ApiToken.Scope], required=True)
        sub.add_parser("list", help="List tokens (never their plaintext).")
        revoke = sub.add_parser("revoke", help="Revoke a token by id.")
        revoke.add_argument("id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            token, raw = ApiToken.issue(options["name"], options["scope"])
            self.stderr.write(f"Created token {token.pk} '{token.name}' with scope '{token.scope}'. It will not be shown again.")
            self.stdout.write(raw)
        elif action == "list":
            for token in ApiToken.objects.all():
                state = "revoked" if token.revoked_at else "active"
                self.stdout.write(f"{token.pk}\t{token.name}\t{token.scope}\t{token.hint}…\t{state}")
        elif action == "revoke":
            found = ApiToken.objects.filter(pk=options["id"]).first()
            if found is None:
                raise CommandError(f"No token with id {options['id']}.")
            found.revoke()
            self.stdout.write(f"Revoked token {found.pk} '{found.name}'.")
