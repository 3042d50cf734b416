"""model.summary(): one row per layer with its output shape and parameter count, then totals."""


def _shape_of(layer):
    try:
        shape = layer.output_shape
    except (AttributeError, ValueError):
        return "?"
    return str(shape)


def _human_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def format_summary(model, show_trainable=False):
    rows = [("Layer (type)", "Output Shape", "Param #") + (("Trainable",) if show_trainable else ())]
    for layer in model.layers:
        params = sum(v.size for v in layer.weights) if layer.built else 0
        row = (f"{layer.name} ({type(layer).__name__})", _shape_of(layer), f"{params:,}" if layer.built else "0 (unbuilt)")
        if show_trainable:
            row += ("Y" if layer.trainable else "N",)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0]))]
    rule = "━" * sum(widths)

    def fmt(row):
        return "".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()

    trainable = sum(v.size for v in model.trainable_weights)
    non_trainable = sum(v.size for v in model.non_trainable_weights)
    nbytes_t = sum(v.value.nbytes for v in model.trainable_weights)
    nbytes_n = sum(v.value.nbytes for v in model.non_trainable_weights)
    lines = [f'Model: "{model.name}"', rule, fmt(rows[0]), rule]
    lines += [fmt(r) for r in rows[1:]]
    lines += [rule,
              f" Total params: {trainable + non_trainable:,} ({_human_bytes(nbytes_t + nbytes_n)})",
              f" Trainable params: {trainable:,} ({_human_bytes(nbytes_t)})",
              f" Non-trainable params: {non_trainable:,} ({_human_bytes(nbytes_n)})"]
    if getattr(model, "float_layers", None):  # set by Model.quantize
        lines.append(f" Not quantized (left in float): {', '.join(model.float_layers)}")
    return "\n".join(lines)
