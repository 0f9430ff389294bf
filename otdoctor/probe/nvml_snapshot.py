"""NVML snapshots: record every pynvml call the adapter makes, and replay them without a GPU.

A snapshot is JSON: the raw return value (or NVML error code) of each pynvml call, keyed by the
function name plus its arguments, per device. `RecordingNvml` wraps the real `pynvml` module and
writes down what it returns (`scripts/record_nvml.py`); `FakeNvml` is a module-like object that
answers the same calls from a snapshot with the same shapes pynvml gives: real ctypes structs
(`c_nvmlMemory_v2_t` with `.total/.free/.used/.reserved`), `nvmlFriendlyObject` process entries
whose `usedGpuMemory` is None where NVML cannot tell, and real `pynvml.NVMLError` subclasses
built from the recorded error codes. The adapter in `otdoctor.probe.nvml` then runs for real.

Value encoding: JSON scalars as is; `{"__bytes__": "..."}` for bytes (PCI bus id); `{"__tuple__":
[...]}` for tuples (compute capability); `{"__struct__": "c_nvmlMemory_v2_t", "fields": {...}}`
for ctypes structs; `{"__object__": {...}}` for pynvml's friendly objects (process entries).
A call the snapshot does not hold raises NVML_ERROR_FUNCTION_NOT_FOUND, as an older driver would.

Process entries may carry `"_local": true` (tests and demos): the entry stands for a process on this
machine and disappears, its memory given back as free, once it has exited. Recorded ones never do.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pynvml

from otdoctor.probe.files import read_regular_bytes
from otdoctor.probe.processes import pid_alive

SNAPSHOT_FORMAT = "otdoctor-nvml-snapshot/1"
_HANDLE_CALL = "nvmlDeviceGetHandleByIndex"
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024  # recorded machines are a few KiB
MAX_DEPTH = 16  # the deepest encoding (a process list of objects) nests 6 levels
MAX_DEVICES = 64
MAX_PID = 1 << 22  # Linux's largest pid_max
MAX_GPU_MEMORY = 16 << 40  # 16 TiB: far above any GPU's (an H200 has 141 GB)


class SnapshotInvalid(ValueError):
    """The file is not a snapshot the adapter can replay; the message says where and why."""


# Encoding --------------------------------------------------------------------------------------
def encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return {"__bytes__": value.decode("latin-1")}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, ctypes.Structure):
        fields = {name: encode(getattr(value, name)) for name, *_ in value._fields_}
        return {"__struct__": type(value).__name__, "fields": fields}
    if isinstance(value, pynvml.nvmlFriendlyObject):
        return {"__object__": {k: encode(v) for k, v in vars(value).items()}}
    if isinstance(value, ctypes.Array):
        return [encode(v) for v in value]
    return {"__repr__": repr(value)}


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__bytes__" in value:
        return str(value["__bytes__"]).encode("latin-1")
    if "__tuple__" in value:
        return tuple(decode(v) for v in _typed(value["__tuple__"], list, "__tuple__"))
    if "__struct__" in value:
        struct = _struct_type(value["__struct__"])()
        for name, raw in _typed(value.get("fields", {}), dict, "fields").items():
            setattr(struct, name, decode(raw))
            if isinstance(raw, int) and getattr(struct, name) != raw:  # ctypes wraps -1 or 10**30 silently
                raise SnapshotInvalid(f"{_short(name)} {_short(raw)} does not fit NVML's {type(struct).__name__}")
        return struct
    if "__object__" in value:
        fields = _typed(value["__object__"], dict, "__object__")
        return pynvml.nvmlFriendlyObject({k: decode(v) for k, v in fields.items() if not k.startswith("_")})
    return value


def _typed(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise SnapshotInvalid(f"{what} is a JSON {_json_type(value)}, not a JSON {_json_type(kind())}")
    return value


def _struct_type(name: Any) -> type[ctypes.Structure]:
    """Only pynvml's ctypes structures: a snapshot never names any other attribute of pynvml."""
    found = getattr(pynvml, name, None) if isinstance(name, str) else None
    if isinstance(found, type) and issubclass(found, ctypes.Structure):
        return found
    raise SnapshotInvalid(f"unknown NVML structure {_short(name)}")


def call_key(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """`nvmlDeviceGetTemperature(0)`, `nvmlDeviceGetMemoryInfo(version=33554472)`, `nvmlDeviceGetName`."""
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in sorted(kwargs.items())]
    return f"{name}({','.join(parts)})" if parts else name


# Recording -------------------------------------------------------------------------------------
class _RecHandle:
    def __init__(self, index: int, real: Any) -> None:
        self.index = index
        self.real = real


class RecordingNvml:
    """Wraps the real pynvml: forwards every call and writes down its raw answer."""

    def __init__(self, real: Any = pynvml) -> None:
        self._real = real
        self.snapshot: dict[str, Any] = {"format": SNAPSHOT_FORMAT, "system": {}, "devices": []}

    def _slot(self, handle_index: int | None) -> dict[str, Any]:
        if handle_index is None:
            return self.snapshot["system"]
        devices = self.snapshot["devices"]
        while len(devices) <= handle_index:
            devices.append({})
        return devices[handle_index]

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if not (name.startswith("nvml") and callable(attr)) or isinstance(attr, type):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            index = None
            if args and isinstance(args[0], _RecHandle):
                index = args[0].index
                real_args = (args[0].real, *args[1:])
                args = args[1:]
            else:
                real_args = args
            key = call_key(name, args, kwargs)
            slot = self._slot(index)
            try:
                result = attr(*real_args, **kwargs)
            except pynvml.NVMLError as exc:
                slot[key] = {"error": exc.value, "name": type(exc).__name__}
                raise
            if name == _HANDLE_CALL:
                self._slot(int(args[0]))
                slot[key] = {"value": int(args[0])}
                return _RecHandle(int(args[0]), result)
            if name not in ("nvmlInit", "nvmlShutdown"):
                slot[key] = {"value": encode(result)}
            return result

        return call


# Validation ------------------------------------------------------------------------------------
# What each call the adapter makes must answer, so that a replayed value can never be one the real
# pynvml would not give (a string as a memory size, a count of a billion GPUs, a negative PID).
_ANSWERS: dict[str, Callable[[Any], bool]] = {
    "nvmlSystemGetDriverVersion": lambda v: isinstance(v, (str, bytes)),
    "nvmlDeviceGetName": lambda v: isinstance(v, (str, bytes)),
    "nvmlDeviceGetUUID": lambda v: isinstance(v, (str, bytes)),
    "nvmlDeviceGetCount": lambda v: _is_int(v, MAX_DEVICES + 1),
    _HANDLE_CALL: lambda v: _is_int(v, MAX_DEVICES + 1),
    "nvmlDeviceGetCudaComputeCapability": lambda v: (
        isinstance(v, tuple) and len(v) == 2 and all(_is_int(x, 100) for x in v)
    ),
    "nvmlDeviceGetPciInfo": lambda v: hasattr(v, "busId"),
    "nvmlDeviceGetMemoryInfo": lambda v: _memory_ok(v),
    "nvmlDeviceGetUtilizationRates": lambda v: hasattr(v, "gpu") and hasattr(v, "memory"),
    "nvmlDeviceGetComputeRunningProcesses": lambda v: _processes_ok(v),
    "nvmlDeviceGetGraphicsRunningProcesses": lambda v: _processes_ok(v),
}


def _is_int(value: Any, below: int = 1 << 64) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < below


def _memory_ok(value: Any) -> bool:
    """Sizes NVML can report: free, used and reserved each within a total no GPU exceeds."""
    total, *parts = sizes = [getattr(value, f, 0) for f in ("total", "free", "used", "reserved")]
    fit = hasattr(value, "used") and all(_is_int(n, MAX_GPU_MEMORY + 1) for n in sizes)
    return fit and total > 0 and all(p <= total for p in parts)


def _processes_ok(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, pynvml.nvmlFriendlyObject)
        and _is_int(getattr(p, "pid", None), MAX_PID + 1)
        and getattr(p, "pid", 0) > 0
        and (getattr(p, "usedGpuMemory", None) is None or _is_int(p.usedGpuMemory))
        for p in value
    )


def _answer_ok(key: str, value: Any) -> bool:
    name = key.split("(", 1)[0]
    if name == "nvmlDeviceGetMemoryInfo" and "version=" in key and not hasattr(value, "reserved"):
        return False
    # The calls not in the table answer a number (temperature, watts, PCIe link, ECC count).
    return _ANSWERS[name](value) if name in _ANSWERS else _is_int(value) or value is None


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_depth(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SnapshotInvalid(f"nested deeper than {MAX_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)


def _check_slot(where: str, slot: Any) -> None:
    for key, entry in _typed(slot, dict, where).items():
        place = f"{where}: {_short(key)}"
        if not isinstance(entry, dict) or not ("error" in entry or "value" in entry):
            raise SnapshotInvalid(f'{place} is not {{"value": ...}} or {{"error": code}}')
        if "error" in entry:
            if not _is_int(entry["error"], 1 << 31):
                raise SnapshotInvalid(f"{place}: the error code {_short(entry['error'])} is not an NVML error code")
            continue
        try:
            value = decode(entry["value"])
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise SnapshotInvalid(f"{place}: {exc}") from None
        if not _answer_ok(key, value):
            raise SnapshotInvalid(f"{place}: {_short(entry['value'])} is not what NVML answers to this call")


_HOST_FIELDS: dict[str, Callable[[Any], bool]] = {
    "wsl": lambda v: isinstance(v, bool),
    "dev_nvidia0": lambda v: isinstance(v, bool),
    "container": lambda v: v is None or isinstance(v, str),
    "nvidia_pci_devices": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}


def validate(data: Any) -> None:
    """Raise SnapshotInvalid unless `data` is a snapshot every replayed call answers sensibly from."""
    if not isinstance(data, dict):
        raise SnapshotInvalid(f"not an otdoctor NVML snapshot (a JSON {_json_type(data)}, not an object)")
    if data.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotInvalid(f"not an otdoctor NVML snapshot (format {_short(data.get('format'))})")
    _check_depth(data)
    host = data.get("host") or {}
    for name, value in _typed(host, dict, "host").items():
        if name in _HOST_FIELDS and not _HOST_FIELDS[name](value):
            raise SnapshotInvalid(f"host: {name} is {_short(value)}")
    _check_slot("system", data.get("system", {}))
    devices = _typed(data.get("devices", []), list, "devices")
    if len(devices) > MAX_DEVICES:
        raise SnapshotInvalid(f"{len(devices)} devices (at most {MAX_DEVICES})")
    for i, slot in enumerate(devices):
        _check_slot(f"devices[{i}]", slot)


def parse(raw: bytes) -> dict[str, Any]:
    """A snapshot file's bytes as a validated snapshot; raises SnapshotInvalid."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise SnapshotInvalid(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # not UTF-8, not JSON
        raise SnapshotInvalid(f"not JSON: {exc}") from None
    validate(data)
    return data


# Replay ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FakeHandle:
    index: int


class FakeNvml:
    """A stand-in for the `pynvml` module, answering from a snapshot.

    Everything that is not an NVML call (error classes, constants, struct types) is the real
    pynvml's, so `except pynvml.NVMLError_NotSupported` and `pynvml.nvmlMemory_v2` work unchanged.
    """

    def __init__(self, snapshot: dict[str, Any], source: str = "<snapshot>") -> None:
        self._snapshot = snapshot
        self._source = source
        self._initialised = False

    @classmethod
    def from_file(cls, path: Path) -> FakeNvml:
        """Raises OSError when the file cannot be read (or is no regular file), SnapshotInvalid."""
        return cls(parse(read_regular_bytes(Path(path), MAX_SNAPSHOT_BYTES)), str(path))

    @property
    def host(self) -> dict[str, Any]:
        return dict(self._snapshot.get("host") or {})

    def _answer(self, slot: dict[str, Any], key: str) -> Any:
        entry = slot.get(key)
        if entry is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        if "error" in entry:
            raise pynvml.NVMLError(int(entry["error"]))
        return decode(entry.get("value"))

    def nvmlInit(self) -> None:
        entry = self._snapshot.get("system", {}).get("nvmlInit")
        if entry and "error" in entry:
            raise pynvml.NVMLError(int(entry["error"]))
        self._initialised = True

    def nvmlShutdown(self) -> None:
        self._require_init()
        self._initialised = False

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._require_init()
        devices = self._snapshot.get("devices", [])
        if not 0 <= int(index) < len(devices):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(int(index))

    def _require_init(self) -> None:
        if not self._initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def __getattr__(self, name: str) -> Any:
        real = getattr(pynvml, name)
        if not (name.startswith("nvml") and callable(real)) or isinstance(real, type):
            return real

        def replay(*args: Any, **kwargs: Any) -> Any:
            self._require_init()
            handle = args[0] if args and isinstance(args[0], FakeHandle) else None
            if handle is not None:
                slot = self._snapshot["devices"][handle.index]
                args = args[1:]
            else:
                slot = self._snapshot.get("system", {})
            key = call_key(name, args, kwargs)
            result = self._answer(slot, key)
            if "RunningProcesses" in name:
                result = self._drop_exited(slot, key, result)
            elif name == "nvmlDeviceGetMemoryInfo" and handle is not None:
                freed = self.freed_bytes(handle)
                if freed:
                    result.free = min(result.total, result.free + freed)
                    result.used = max(0, result.used - freed)
            return result

        replay.__name__ = name
        return replay

    def _drop_exited(self, slot: dict[str, Any], key: str, procs: list[Any]) -> list[Any]:
        raw = slot[key].get("value") or []
        keep = []
        for entry, proc in zip(raw, procs, strict=False):
            local = isinstance(entry, dict) and entry.get("__object__", {}).get("_local")
            if local and not pid_alive(int(proc.pid)):
                continue
            keep.append(proc)
        return keep

    def local_pids(self) -> frozenset[int]:
        """PIDs marked `_local`: the only ones that stand for processes on this machine."""
        return frozenset(int(obj["pid"]) for slot in self._snapshot.get("devices", []) for obj in _local_entries(slot))

    def freed_bytes(self, handle: FakeHandle) -> int:
        """Memory of `_local` processes that have exited: the driver gives it back as free."""
        exited = (o for o in _local_entries(self._snapshot["devices"][handle.index]) if not pid_alive(int(o["pid"])))
        return sum(int(o["usedGpuMemory"]) for o in exited if o.get("usedGpuMemory") is not None)


def _local_entries(slot: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The recorded process entries of one device marked `_local` (see the module's doc)."""
    for key, entry in slot.items():
        if "RunningProcesses" in key and isinstance(entry, dict):
            for raw in entry.get("value") or []:
                obj = raw.get("__object__", {}) if isinstance(raw, dict) else {}
                if obj.get("_local"):
                    yield obj


LoadNvml = Callable[[], Any]
