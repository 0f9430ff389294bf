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

Process entries may carry `"_local": true` (tests and demos): the entry stands for a process on
this machine and disappears, its memory given back as free, once that process has exited, as the
driver does. Recorded snapshots never set it.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pynvml

from otdoctor.probe.processes import pid_alive

SNAPSHOT_FORMAT = "otdoctor-nvml-snapshot/1"
_HANDLE_CALL = "nvmlDeviceGetHandleByIndex"


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
        return tuple(decode(v) for v in value["__tuple__"])
    if "__struct__" in value:
        struct = getattr(pynvml, value["__struct__"])()
        for name, raw in value.get("fields", {}).items():
            setattr(struct, name, decode(raw))
        return struct
    if "__object__" in value:
        return pynvml.nvmlFriendlyObject(
            {k: decode(v) for k, v in value["__object__"].items() if not k.startswith("_")}
        )
    return value


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


# Replay ----------------------------------------------------------------------------------------
class FakeHandle:
    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<FakeHandle {self.index}>"


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
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        if found != SNAPSHOT_FORMAT:
            raise ValueError(f"not an otdoctor NVML snapshot (format {found!r})")
        return cls(data, str(path))

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
        if not self._initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
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
        pids = set()
        for slot in self._snapshot.get("devices", []):
            for key, entry in slot.items():
                if "RunningProcesses" in key and isinstance(entry, dict):
                    for raw in entry.get("value") or []:
                        obj = raw.get("__object__", {}) if isinstance(raw, dict) else {}
                        if obj.get("_local"):
                            pids.add(int(obj["pid"]))
        return frozenset(pids)

    def freed_bytes(self, handle: FakeHandle) -> int:
        """Memory of `_local` processes that have exited: the driver gives it back as free."""
        slot = self._snapshot["devices"][handle.index]
        total = 0
        for key, entry in slot.items():
            if "RunningProcesses" not in key or "value" not in entry:
                continue
            for raw in entry["value"] or []:
                obj = raw.get("__object__", {}) if isinstance(raw, dict) else {}
                if obj.get("_local") and not pid_alive(int(obj["pid"])) and obj.get("usedGpuMemory") is not None:
                    total += int(obj["usedGpuMemory"])
        return total


LoadNvml = Callable[[], Any]
