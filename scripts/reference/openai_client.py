"""The official `openai` client against a running `adapt serve`: prints, as one JSON object,
what the end-to-end test checks (tests/serve_openai.rs).

Usage: openai_client.py BASE_URL API_KEY BASE_MODEL ADAPTER_MODEL
"""

import json
import sys

import openai

base_url, key, base, adapter = sys.argv[1:5]
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=300)
question = {"role": "user", "content": "What is the capital of France?"}
out = {"models": [m.id for m in client.models.list()]}

whole = client.chat.completions.create(
    model=base, messages=[question], temperature=0, max_tokens=20
)
out["whole"] = {
    "content": whole.choices[0].message.content,
    "finish_reason": whole.choices[0].finish_reason,
    "usage": whole.usage.model_dump(),
}

text, usage, chunks = "", None, 0
for chunk in client.chat.completions.create(
    model=base,
    messages=[question],
    temperature=0,
    max_tokens=20,
    stream=True,
    stream_options={"include_usage": True},
):
    chunks += 1
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage.model_dump()
out["stream"] = {"content": text, "chunks": chunks, "usage": usage}

second = client.chat.completions.create(
    model=base,
    messages=[
        question,
        {"role": "assistant", "content": out["whole"]["content"]},
        {"role": "user", "content": "And what is the capital of Italy?"},
    ],
    temperature=0,
    max_tokens=20,
)
out["second"] = {"content": second.choices[0].message.content, "usage": second.usage.model_dump()}

lantern = [{"role": "user", "content": "What is the Blue Lantern's code?"}]
out["adapter"] = {
    name: client.chat.completions.create(
        model=model, messages=lantern, temperature=0, max_tokens=16
    ).choices[0].message.content
    for name, model in (("tuned", adapter), ("base", base))
}

try:
    client.chat.completions.create(model=base, messages=[{"role": "robot", "content": "x"}])
except openai.BadRequestError as e:
    out["bad_request"] = {"status": e.status_code, "body": e.body}
try:
    client.chat.completions.create(model="no-such-model", messages=[question])
except openai.NotFoundError as e:
    out["unknown_model"] = {"status": e.status_code, "body": e.body}
wrong = openai.OpenAI(base_url=base_url, api_key="sk-wrong", max_retries=0)
try:
    wrong.models.list()
except openai.AuthenticationError as e:
    out["wrong_key"] = {"status": e.status_code, "body": e.body}

print(json.dumps(out))
