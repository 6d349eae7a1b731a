"""Helpers shared by the tests and the bench scripts; never imported by the product (tests/test_testing_package.py
checks that).

* ``jsonrpc``: a raw JSON-RPC client for ``modelmill lsp`` over pipes (standard library only, independent of the
  server's own framing code);
* ``lsp_client``: the pytest-lsp client that records what the server sends, and the usual session set-up;
* ``tiny_models``: the tiny Llama and BERT models (and their tokenizers) built locally, no downloads;
* ``ray_cluster``: a real Ray cluster on loopback whose processes are this session's own.

Modules import their heavy dependencies (torch, transformers, ray, pytest-lsp) only where they are used, so
importing one helper does not pull in the others'.
"""
