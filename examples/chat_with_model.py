"""The Olive tutorial's test script, rewritten for the current onnxruntime-genai API (0.8+).

The tutorial's version set ``params.input_ids`` and called ``generator.compute_logits()``;
both were removed. Now the prompt goes in with ``generator.append_tokens``.

    python examples/chat_with_model.py models/smollm2-int4 "What is machine learning?"
"""

import json
import sys
from pathlib import Path

import onnxruntime_genai as og


def main(model_folder: str, question: str, max_new_tokens: int = 128) -> str:
    model = og.Model(model_folder)
    tokenizer = og.Tokenizer(model)
    tokenizer_stream = tokenizer.create_stream()

    # The chat template ships beside the model (chat_template.jinja or tokenizer_config.json).
    template_file = Path(model_folder) / "chat_template.jinja"
    template = template_file.read_text() if template_file.exists() else None
    messages = json.dumps([{"role": "user", "content": question}])
    prompt = tokenizer.apply_chat_template(messages, template_str=template, add_generation_prompt=True)
    input_tokens = tokenizer.encode(prompt)

    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(input_tokens) + max_new_tokens)
    generator = og.Generator(model, params)
    generator.append_tokens(input_tokens)

    answer = []
    while not generator.is_done():
        generator.generate_next_token()
        piece = tokenizer_stream.decode(generator.get_next_tokens()[0])
        answer.append(piece)
        print(piece, end="", flush=True)
    print()
    return "".join(answer)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "What is machine learning?")
