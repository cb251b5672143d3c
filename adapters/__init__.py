"""Everything foreign to the core: Postgres, llama.cpp, ONNX, OpenAI-compatible HTTP, LangChain,
LangGraph, the server and the CLI. Each subpackage imports its third-party library lazily enough
that ``import memstrata`` never pulls it in."""
