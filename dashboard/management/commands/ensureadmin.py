"""Make sure the ``admin`` login exists; print its password only when this command chose it."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from choreoscope.env import env_str


class Command(BaseCommand):
    help = "Create the 'admin' superuser if it is missing (password from ADMIN_PASSWORD, else generated and printed once)."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        password = env_str("ADMIN_PASSWORD")
        url = f"http://127.0.0.1:{settings.PORT}/"
        user = User.objects.filter(username="admin").first()
        if user is None:
            chosen = password or secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", email="", password=chosen)
            if password:
                self.stdout.write(f"Log in at {url} as admin with the password from ADMIN_PASSWORD.")
            else:
                self.stdout.write(
                    self.style.SUCCESS(f"Log in at {url} as admin / {chosen}  (shown once; set ADMIN_PASSWORD to choose it)")
                )
        elif password and not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write(f"Log in at {url} as admin; its password was reset from ADMIN_PASSWORD.")
        else:
            self.stdout.write(f"Log in at {url} as admin (password as printed when it was created, or ADMIN_PASSWORD).")
