"""The admin's page for AsyncAPI documents: uploaded as a file or pasted, checked before saving."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured

from tracing.asyncapi import parse_asyncapi
from tracing.contracts import forget_loaded_documents
from tracing.models import ContractDocument

MAX_UPLOAD_BYTES = 1024 * 1024


class ContractDocumentForm(forms.ModelForm):
    upload = forms.FileField(required=False, help_text="An AsyncAPI 3.0 file (YAML or JSON); replaces the text below.")

    class Meta:
        model = ContractDocument
        fields = ("name", "upload", "document")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["document"].required = False

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("upload")
        if upload is not None:
            if upload.size > MAX_UPLOAD_BYTES:
                raise forms.ValidationError(f"The file is larger than {MAX_UPLOAD_BYTES // 1024} KiB.")
            try:
                cleaned["document"] = upload.read().decode()
            except UnicodeDecodeError:
                raise forms.ValidationError("The file is not UTF-8 text.") from None
        if not cleaned.get("document"):
            raise forms.ValidationError("Upload an AsyncAPI document or paste it.")
        try:
            parse_asyncapi(cleaned["document"], cleaned.get("name") or "the document")
        except ImproperlyConfigured as error:
            raise forms.ValidationError(str(error)) from None
        return cleaned


@admin.register(ContractDocument)
class ContractDocumentAdmin(admin.ModelAdmin):
    form = ContractDocumentForm
    list_display = ("name", "updated_at")

    def save_model(self, request: Any, obj: ContractDocument, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        forget_loaded_documents()

    def delete_model(self, request: Any, obj: ContractDocument) -> None:
        super().delete_model(request, obj)
        forget_loaded_documents()
