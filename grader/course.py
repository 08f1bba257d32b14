"""The course's assignments: names, student-owned files, tasks. One table.

Everything else (tests, provided model code, handouts) is found by convention:
    assignments/<name>/<student_file>     the student's copy (stub in the release)
    assignments/<name>/tests/             public tests
    reference/<name>/<student_file>       the solution, with nbgrader markers
    tests/<name>/                         the hidden suite
    tests/mutants/<name>/                 wrong solutions the hidden suite must catch
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Assignment:
    name: str
    student_file: str
    tasks: dict[str, str]       # function, class or "Class.method" -> "1.1"
    titles: dict[str, str] = field(default_factory=dict)  # "1.1" -> title
    call_timeout_s: float = 60.0

    @property
    def module(self) -> str:
        return Path(self.student_file).stem

    def student_path(self, root: Path) -> Path:
        """Where a student-shaped tree (a submission, a release) keeps the student's file."""
        return root / "assignments" / self.name / self.student_file

    def reference_path(self, root: Path = REPO) -> Path:
        return root / "reference" / self.name / self.student_file

    def provided_files(self, root: Path = REPO) -> list[Path]:
        """Trusted code the student's module may import (e.g. a provided model)."""
        folder = root / "assignments" / self.name
        return sorted(p for p in folder.glob("*.py") if p.name != self.student_file)

    def public_tests(self, root: Path = REPO) -> Path:
        return root / "assignments" / self.name / "tests"

    def hidden_tests(self, root: Path = REPO) -> Path:
        return root / "tests" / self.name

    def handout(self, root: Path = REPO) -> Path:
        return root / "assignments" / self.name / "README.md"

    def task_of(self, function: str) -> str | None:
        """For "LoRALinear.merge": that entry, else "merge"'s, else "LoRALinear"'s."""
        cls, _, method = function.rpartition(".")
        for key in (function, method, cls):
            if key and key in self.tasks:
                return self.tasks[key]
        return None


ASSIGNMENTS: dict[str, Assignment] = {
    a.name: a
    for a in [
        Assignment(
            "quantization", "quantize.py",
            tasks={"absmax_quantize": "1.1", "absmax_dequantize": "1.2",
                   "quantize_rowwise": "1.3"},
            titles={"1.1": "absmax_quantize", "1.2": "absmax_dequantize",
                    "1.3": "quantize_rowwise (Triton kernel)"},
            call_timeout_s=20.0,  # correct calls take milliseconds, interpreted kernels < 2 s
        ),
        Assignment(
            "lora", "lora.py",
            tasks={"LoRALinear": "2.1", "__init__": "2.1", "forward": "2.1",
                   "delta_weight": "2.1", "merge": "2.2", "unmerge": "2.2",
                   "apply_lora": "2.3", "lora_state_dict": "2.3", "merge_lora": "2.3",
                   "unmerge_lora": "2.3"},
            titles={"2.1": "LoRALinear: init, forward, delta",
                    "2.2": "LoRALinear: merge, unmerge",
                    "2.3": "apply_lora, state dict, merge_lora"},
            call_timeout_s=20.0,  # a correct probe takes milliseconds (a 30-step training < 1 s)
        ),
        Assignment(
            "moe", "moe.py",
            tasks={"top_k_gating": "5.1", "load_balancing_loss": "5.2",
                   "TopKRouter": "5.3", "MoELayer": "5.4"},
            titles={"5.1": "top_k_gating", "5.2": "load_balancing_loss",
                    "5.3": "TopKRouter (noisy top-k)", "5.4": "MoELayer (dispatch, combine)"},
            call_timeout_s=30.0,  # correct calls take milliseconds on tiny shapes
        ),
        Assignment(
            "ddp", "ddp.py",
            tasks={"broadcast_parameters": "6.1", "all_reduce_gradients": "6.2", "DDP": "6.3",
                   "__init__": "6.3", "forward": "6.3",
                   "finish_gradient_synchronization": "6.3"},
            titles={"6.1": "broadcast_parameters", "6.2": "all_reduce_gradients (naive)",
                    "6.3": "DDP: buckets overlapped with backward"},
            call_timeout_s=20.0,  # a correct probe (a few steps, 4 ranks on 2 cores) takes < 2 s;
            # a rank waiting for a collective that never comes fails after 10 s (gloo timeout)
        ),
        Assignment(
            "kv_cache", "cache.py",
            tasks={"KVCache": "3.1", "__init__": "3.1", "update": "3.1", "reset": "3.1",
                   "causal_attention": "3.2"},
            titles={"3.1": "KVCache: a static cache, O(T_new) updates",
                    "3.2": "causal_attention (bottom-right mask, GQA)",
                    "3.3": "cached decoding with the provided model"},
            call_timeout_s=20.0,  # a correct probe (greedy generation, tiny model) takes < 0.1 s
        ),
        Assignment(
            "flash_attention", "flash.py",
            tasks={"flash_attention_forward": "4.1", "forward": "4.3", "backward": "4.3",
                   "flash_attention": "4.3"},
            titles={"4.1": "flash_attention_forward (Triton kernel, online softmax)",
                    "4.2": "causal masking (bottom-right, full blocks unmasked)",
                    "4.3": "flash_attention: differentiable, tiled backward",
                    "4.4": "stretch: the backward as Triton kernels"},
            call_timeout_s=60.0,  # interpreted: a correct 256x256 forward+backward takes ~2 s
        ),
    ]
}


def get(name: str) -> Assignment:
    try:
        return ASSIGNMENTS[name]
    except KeyError:
        known = ", ".join(ASSIGNMENTS)
        raise ValueError(f"unknown assignment {name!r}; known: {known}") from None


def assignment_of_path(path: Path) -> Assignment | None:
    """The assignment a test file belongs to: tests/<name>/... or assignments/<name>/tests/..."""
    parts = Path(path).resolve().parts
    for i, part in enumerate(parts[:-1]):
        if part in ("tests", "assignments") and parts[i + 1] in ASSIGNMENTS:
            return ASSIGNMENTS[parts[i + 1]]
    return None
