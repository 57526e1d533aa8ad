"""Small local copies of the seven specificity benchmarks, each in its lmms-eval task's own format (the columns
of the hub datasets those tasks read), saved with ``save_to_disk``, plus task YAMLs that include lmms-eval's own
task files and only point them at the local copies (``<task>_local``). And a stand-in GPT grader on 127.0.0.1
for MM-Vet and MMBench, which lmms-eval scores through an OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

MMVET_GRADE = "0.5"  # the stand-in grader's score for every MM-Vet answer
MMBENCH_CHOICE = "A"  # and its reading of every MMBench answer


def _image(seed: int):
    from PIL import Image

    return Image.fromarray((np.random.default_rng(seed).random((48, 48, 3)) * 255).astype("uint8"))


def _rows() -> dict[str, tuple[str, list[dict]]]:
    """task -> (split, rows), two or three rows each, in the columns lmms-eval's task reads."""
    vqa_answers = [{"answer": a, "answer_confidence": "yes", "answer_id": i} for i, a in enumerate(["red"] * 10)]
    return {
        # lmms-eval's GQA joins images from a second hub config by imageId; the local copy carries them inline
        "gqa": ("testdev", [
            {"question": "What colour is the square?", "answer": "red", "imageId": "n1", "image": _image(1)},
            {"question": "Is it raining?", "answer": "no", "imageId": "n2", "image": _image(2)},
        ]),
        "vizwiz_vqa_val": ("val", [
            {"question_id": f"VizWiz_val_{i}", "question": "what is this?", "answers": ["can"] * 10,
             "category": "other", "image": _image(10 + i)} for i in range(2)
        ]),
        "scienceqa_img": ("test", [
            {"question": "Which animal is a mammal?", "choices": ["frog", "dog", "eel"], "answer": 1,
             "hint": "Look at the picture.", "image": _image(20)},
            {"question": "Which is a solid?", "choices": ["ice", "water"], "answer": 0, "hint": "",
             "image": _image(21)},
        ]),
        "vqav2_val": ("validation", [
            {"question_id": 100 + i, "question": "What colour is the car?", "answers": vqa_answers,
             "multiple_choice_answer": "red", "question_type": "what color", "answer_type": "other",
             "image": _image(30 + i)} for i in range(2)
        ]),
        "pope": ("test", [
            {"question_id": str(i), "question": "Is there a cat in the image?", "answer": ["yes", "no"][i % 2],
             "category": "adversarial", "image_source": "local", "image": _image(40 + i)} for i in range(4)
        ]),
        "mmvet": ("test", [
            {"question_id": f"v1_{i}", "question": "What is shown?", "answer": "a square", "capability": "rec,ocr",
             "image": _image(50 + i)} for i in range(2)
        ]),
        "mmbench_en_dev": ("dev", [
            {"index": i, "question": "Which shape is shown?", "hint": "nan", "A": "square", "B": "circle",
             "C": "triangle", "D": "star", "answer": answer, "category": "shape", "L2-category": "perception",
             "source": "local", "split": "dev", "image": _image(60 + i)} for i, answer in enumerate(["A", "B", "A"])
        ]),
    }  # fmt: skip


def fixture_sizes() -> dict[str, int]:
    return {task: len(rows) for task, (_, rows) in _rows().items()}


def write_local_benchmarks(root: Path) -> Path:
    """Write the local copies and their task YAMLs under ``root``; returns the folder for include_path."""
    import lmms_eval
    from datasets import Dataset, DatasetDict
    from datasets import Image as ImageFeature

    builtin = Path(lmms_eval.__file__).parent / "tasks"
    yaml_files = {
        "gqa": "gqa/gqa.yaml",
        "vizwiz_vqa_val": "vizwiz_vqa/vizwiz_vqa_val.yaml",
        "scienceqa_img": "scienceqa/scienceqa_img.yaml",
        "vqav2_val": "vqav2/vqav2_val.yaml",
        "pope": "pope/pope.yaml",
        "mmvet": "mmvet/mmvet.yaml",
        "mmbench_en_dev": "mmbench/mmbench_en_dev.yaml",
    }
    tasks = root / "tasks"
    tasks.mkdir(parents=True)
    for task, (split, rows) in _rows().items():
        data = root / "data" / task
        dataset = Dataset.from_list(rows).cast_column("image", ImageFeature())
        DatasetDict({split: dataset}).save_to_disk(str(data))
        lines = [
            f"include: {builtin / yaml_files[task]}",
            f"task: {task}_local",
            f"dataset_path: {data}",
            "dataset_kwargs:",
            "  load_from_disk: true",
        ]
        if task == "gqa":
            lines.append("process_docs: null  # images are inline")
        if task == "mmbench_en_dev":  # the score only: the official-server submission sheet is not wanted here
            aggregate = "lmms_eval.tasks.mmbench.en_utils.mmbench_aggregate_dev_results_eval"
            lines += ["metric_list:", "  - metric: gpt_eval_score", f"    aggregation: !function {aggregate}"]
            lines.append("    higher_is_better: true")
        (tasks / f"{task}_local.yaml").write_text("\n".join(lines) + "\n")
    return tasks


class GraderServer:
    """An OpenAI-compatible chat endpoint answering lmms-eval's graders, on any path under the base URL."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (path, prompt)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = str(body["messages"][-1]["content"])
                server.requests.append((self.path, prompt))
                answer = MMVET_GRADE if "Compare the ground truth and prediction" in prompt else MMBENCH_CHOICE
                message = {"role": "assistant", "content": answer}
                reply = {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "grader"),
                    "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                payload = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> GraderServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
