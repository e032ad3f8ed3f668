from __future__ import annotations

from django import forms

from demo.catalog import SERVICES
from demo.faults import MAX_SLOW_SECONDS, Faults


class FaultForm(forms.Form):
    """One service's faults as the panel edits them: shares in percent, delay in seconds."""

    service = forms.ChoiceField(choices=[(name, name) for name in SERVICES])
    drop = forms.FloatField(min_value=0, max_value=100, required=False, label="Drop %")
    slow = forms.FloatField(min_value=0, max_value=MAX_SLOW_SECONDS, required=False, label="Slow (s)")
    fail = forms.FloatField(min_value=0, max_value=100, required=False, label="Fail %")
    offline = forms.BooleanField(required=False)

    def faults(self) -> Faults:
        data = self.cleaned_data
        return Faults(
            drop=(data["drop"] or 0.0) / 100.0,
            slow_seconds=data["slow"] or 0.0,
            fail=(data["fail"] or 0.0) / 100.0,
            offline=data["offline"],
        )

    def error_text(self) -> str:
        return "; ".join(f"{field}: {' '.join(str(error) for error in errors)}" for field, errors in self.errors.items())
