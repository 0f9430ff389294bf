# Run by otdoctor inside another interpreter (`python -I interpreter_script.py [--dists] [--torch]`)
# to learn about it without importing anything heavy into otdoctor itself. Prints one JSON object.
# Keep it compatible with Python 3.6 and free of third-party imports: it runs in whatever
# interpreter the user's venv or pyenv has, broken ones included.
import json
import os
import sys

STDLIB_MODULES = ["ssl", "ctypes", "bz2", "lzma", "sqlite3", "readline", "tkinter", "venv", "zlib"]


def _stdlib():
    found = {}  # type: dict
    for name in STDLIB_MODULES:
        try:
            __import__(name)
            if name == "tkinter":
                import _tkinter  # noqa: F401  (tkinter itself imports lazily on some builds)
            found[name] = None
        except BaseException as exc:  # noqa: BLE001 - report whatever breaks the import
            found[name] = "%s: %s" % (type(exc).__name__, exc)
    return found


def _dists():
    dists = []
    try:
        from importlib import metadata
    except ImportError:
        return None
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:  # noqa: BLE001
            name = None
        if not name:
            continue
        direct_url = None
        try:
            text = dist.read_text("direct_url.json")
            if text:
                direct_url = json.loads(text)
        except Exception:  # noqa: BLE001
            direct_url = None
        try:
            location = str(dist.locate_file(""))
        except Exception:  # noqa: BLE001
            location = None
        dists.append({"name": name, "version": dist.version, "direct_url": direct_url, "location": location})
    return dists


def _markers():
    """PEP 508 marker values of this interpreter, so requirements are judged for it, not otdoctor."""
    import platform

    impl = sys.implementation
    iver = impl.version
    impl_version = "%d.%d.%d" % (iver.major, iver.minor, iver.micro)
    if iver.releaselevel != "final":
        impl_version += iver.releaselevel[0] + str(iver.serial)
    return {
        "implementation_name": impl.name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def _torch_static():
    """torch's version and CUDA build read from torch/version.py without importing torch."""
    for entry in sys.path:
        path = os.path.join(entry or ".", "torch", "version.py")
        if os.path.isfile(path):
            ns = {}  # type: dict
            try:
                with open(path) as fh:
                    exec(compile(fh.read(), path, "exec"), ns)  # a few assignments, no imports of torch
            except Exception as exc:  # noqa: BLE001
                return {"path": path, "error": "%s: %s" % (type(exc).__name__, exc)}
            return {
                "path": os.path.dirname(path),
                "version": ns.get("__version__"),
                "cuda": ns.get("cuda"),
                "hip": ns.get("hip"),
                "git_version": ns.get("git_version"),
            }
    return None


def _torch_import():
    """The slow, definitive test: import torch and ask it about CUDA."""
    info = {}
    try:
        import torch
    except BaseException as exc:  # noqa: BLE001
        return {"import_error": "%s: %s" % (type(exc).__name__, exc)}
    info["version"] = torch.__version__
    info["cuda"] = torch.version.cuda
    info["hip"] = getattr(torch.version, "hip", None)
    try:
        info["arch_list"] = list(torch.cuda.get_arch_list())
    except Exception as exc:  # noqa: BLE001
        info["arch_list"] = []
        info["arch_list_error"] = str(exc)
    try:
        info["cuda_available"] = bool(torch.cuda.is_available())
        if info["cuda_available"]:
            info["device_count"] = torch.cuda.device_count()
            info["capabilities"] = [list(torch.cuda.get_device_capability(i)) for i in range(torch.cuda.device_count())]
    except Exception as exc:  # noqa: BLE001
        info["cuda_available"] = False
        info["cuda_error"] = "%s: %s" % (type(exc).__name__, exc)
    return info


def main():
    args = sys.argv[1:]
    out = {
        "executable": sys.executable,
        "version": list(sys.version_info[:3]),
        "version_string": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "platform": sys.platform,
        "stdlib": _stdlib(),
    }
    if "--dists" in args:
        out["dists"] = _dists()
        out["markers"] = _markers()
        out["torch_static"] = _torch_static()
    if "--torch" in args:
        out["torch"] = _torch_import()
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
