"""User kernels from .tile files: ``mod = tigon.load("my_op.tile")``, then
``mod.my_kernel(x, y, eps=1e-6)``. Kernels are compiled on first call for the dtypes and
sizes they get, autotuned over their ``tune`` parameters, and cached like the built-ins."""
import os

import torch


class TileError(RuntimeError):
    """A .tile file that does not check: the message holds every ``file:line:col: error``."""


class Kernel:
    """One kernel of a loaded file; call it with tensors and scalars in parameter order (or by
    name). Keyword arguments named after ``const`` or ``tune`` parameters bind them."""

    def __init__(self, module, name, generics, params):
        self._module = module
        self.name = name
        self.generics = generics  # name -> "dtype" | "const" | "tune"
        self.params = params      # [(name, "tensor"|"scalar", type, access)]

    def __repr__(self):
        sig = ", ".join(f"{n}: {'out ' if a == 'out' else 'inout ' if a == 'inout' else ''}{t}"
                        for n, _, t, a in self.params)
        return f"<tigon kernel {self.name}({sig})>"

    def __call__(self, *args, **kwargs):
        if len(args) > len(self.params):
            raise TypeError(f"{self.name}() takes {len(self.params)} arguments, got {len(args)}")
        values = dict(zip((p[0] for p in self.params), args))
        bindings = {}
        for key, value in kwargs.items():
            if key in values:
                raise TypeError(f"{self.name}() got two values for argument '{key}'")
            if any(p[0] == key for p in self.params):
                values[key] = value
            elif self.generics.get(key) in ("const", "tune"):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise TypeError(f"{self.name}(): {key} must be an int, got {type(value).__name__}")
                bindings[key] = value
            else:
                raise TypeError(f"{self.name}() got an unexpected keyword argument '{key}'")
        tensors, floats, ints, outputs = [], [], [], []
        for name, kind, type_name, access in self.params:
            if name not in values:
                raise TypeError(f"{self.name}() missing argument '{name}'")
            v = values[name]
            if kind == "tensor":
                if not isinstance(v, torch.Tensor):
                    raise TypeError(f"{self.name}(): argument '{name}' must be a tensor, got {type(v).__name__}")
                tensors.append(v)
                if access != "in":
                    outputs.append(v)
            elif type_name == "f32":
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise TypeError(f"{self.name}(): argument '{name}' must be a float, got {type(v).__name__}")
                floats.append(float(v))
            else:
                if not isinstance(v, int) or isinstance(v, bool):
                    raise TypeError(f"{self.name}(): argument '{name}' must be an int, got {type(v).__name__}")
                ints.append(v)
        config = " ".join(f"{k}={v}" for k, v in sorted(bindings.items()))
        torch.ops.tigon.launch_tile(self._module.path, self._module.source, self.name, config, tensors, floats, ints)
        if not outputs:
            return None
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


class TileModule:
    """The kernels of one .tile file, as attributes."""

    def __init__(self, path, source):
        self.path = path
        self.source = source
        try:
            description = torch.ops.tigon.describe_tile(path, source)
        except RuntimeError as e:
            raise TileError(str(e).split("\nException raised from")[0]) from None
        self.kernels = {}
        kernel = None
        for line in description.splitlines():
            words = line.split()
            if words[0] == "kernel":
                kernel = Kernel(self, words[1], {}, [])
                self.kernels[kernel.name] = kernel
            elif words[0] == "generic":
                kernel.generics[words[1]] = words[2]
            else:
                kernel.params.append((words[1], words[2], words[3], words[4]))

    def __getattr__(self, name):
        kernels = self.__dict__.get("kernels", {})
        if name in kernels:
            return kernels[name]
        raise AttributeError(f"{self.path} has no kernel '{name}' (kernels: {', '.join(kernels) or 'none'})")

    def __dir__(self):
        return [*super().__dir__(), *self.kernels]


def load(path) -> TileModule:
    """Loads a .tile file. Errors in it raise TileError with every diagnostic."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        source = f.read()
    return TileModule(path, source)
