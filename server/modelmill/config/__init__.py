"""Workflow configs: parse with positions, normalize Olive's forms, check, migrate, export a JSON Schema.

Nothing here imports torch, onnxruntime or transformers: the CLI's validate command and the
language server use it on every keystroke.
"""

from __future__ import annotations

from modelmill.config.diagnostics import CODES, Diagnostic, format_diagnostic
from modelmill.config.document import Document, load_document, parse_document
from modelmill.config.migrate import migrate_document
from modelmill.config.models import WorkflowConfig
from modelmill.config.schema import workflow_json_schema
from modelmill.config.validate import format_report, load_workflow, validate_document
from modelmill.config.view import Environment

__all__ = [
    "CODES", "Diagnostic", "Document", "Environment", "WorkflowConfig", "format_diagnostic", "format_report",
    "load_document", "load_workflow", "migrate_document", "parse_document", "validate_document",
    "workflow_json_schema",
]
