"""shared-cache and configure-qualcomm-sdk: Olive's flags are accepted, and the command says what it needs."""

from __future__ import annotations

import argparse

from modelmill.commands.common import add_telemetry_flag

NEEDS = {
    "shared-cache": ("Olive's shared cache lives in an Azure Blob storage container (azure-storage-blob, "
                     "azure-identity and an Azure account); ModelMill does not provide a shared cache",
                     "use ModelMill's local cache: `modelmill cache ls` / `modelmill cache clean`; to manage an "
                     "Olive shared cache, run `olive shared-cache` with olive-ai installed"),
    "configure-qualcomm-sdk": ("configuring Qualcomm's SDK needs the Qualcomm AI Engine Direct (QNN) / SNPE SDK "
                               "installed from Qualcomm, and the Olive passes that use it; ModelMill does not provide "
                               "them",
                               "install Qualcomm's SDK and run `olive configure-qualcomm-sdk` with olive-ai; for QNN "
                               "with ModelMill, install onnxruntime-qnn and use --provider QNNExecutionProvider"),
}


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.set_defaults(unavailable_command=name)
    if name == "shared-cache":
        parser.add_argument("--delete", action="store_true", help="delete a model's entries from the shared cache")
        parser.add_argument("--all", action="store_true", help="delete every entry of the container")
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask before deleting")
        parser.add_argument("--account", required=True, help="Azure storage account name")
        parser.add_argument("--container", required=True, help="Azure blob container name")
        parser.add_argument("--model_hash", default=None, help="the model whose entries to delete")
    else:
        parser.add_argument("--py_version", required=True, choices=["3.6", "3.8"],
                            help="Python version of the SDK's environment")
    add_telemetry_flag(parser)


def run(args: argparse.Namespace) -> int:
    from modelmill.errors import ModelMillError

    message, fix = NEEDS[args.unavailable_command]
    raise ModelMillError(f"{args.unavailable_command}: {message}", fix=fix)
