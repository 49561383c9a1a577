"""Where the ANN blocks look: their attention weights for an image, and the
image regions of the pyramid-sampled keys those weights refer to.

Each query position of AFNB and APNB attends over `sum(s * s)` keys (110 for
the default pyramid `(1, 3, 6, 8)`). Key `k` is one adaptive-average-pooling
bin of the key feature map: a rectangle of feature cells, hence a rectangle
of the image. `pyramid_bins` lists these rectangles exactly as PyTorch's
`AdaptiveAvgPool2d` (and `keras_ann.layers.PyramidPooling`) draw them,
`paint_keys` spreads each key's weight evenly over its image rectangle, and
`block_attention` runs a model on images and returns the weights of one of
its blocks.

The painted map is the block's attention seen as a dense non-local
attention: a key averages the values of its bin, so weight `w_k` on key `k`
is the same as weight `w_k / area_k` on every position of that bin. The map
sums to the sum of the weights, 1 for a query's softmax.
"""

import dataclasses

import numpy as np

from keras_ann.checks import check_pair

__all__ = [
    "BLOCKS",
    "BlockAttention",
    "bins_to_image",
    "block_attention",
    "paint_keys",
    "pyramid_bins",
]

# Short names of the blocks of `ANNSegmenter` -> `layer.sub_layer` names.
BLOCKS = {"fusion": "decode_head.fusion", "context": "decode_head.context"}


def _scales(pool_scales):
    scales = tuple(int(s) for s in pool_scales)
    if not scales or min(scales) < 1:
        raise ValueError(f"`pool_scales` must be positive ints, got {pool_scales!r}.")
    return scales


def pyramid_bins(size, pool_scales=(1, 3, 6, 8)):
    """The feature-map rectangle each pyramid key averages.

    Bin `i` of a scale `s` along an axis of length `n` spans
    `floor(i * n / s)` up to (excluding) `ceil((i + 1) * n / s)`, as
    PyTorch's `AdaptiveAvgPool2d`. Keys are listed in the order of
    `PyramidPooling`: scales in the given order, bins row by row.

    Args:
        size: `(height, width)` of the key feature map (or an int for a
            square map).
        pool_scales: the pyramid. Defaults to `(1, 3, 6, 8)`.

    Returns:
        `(num_keys, 4)` int array of half-open rectangles
        `(top, bottom, left, right)` in feature cells.

    Example:

    >>> pyramid_bins((10, 10), (1, 3))[:3].tolist()
    [[0, 10, 0, 10], [0, 4, 0, 4], [0, 4, 3, 7]]
    """
    height, width = check_pair(size, "size")
    rows = []
    for s in _scales(pool_scales):
        bins = np.arange(s)
        y0, y1 = bins * height // s, -((-(bins + 1) * height) // s)
        x0, x1 = bins * width // s, -((-(bins + 1) * width) // s)
        for i in range(s):
            for j in range(s):
                rows.append((y0[i], y1[i], x0[j], x1[j]))
    return np.asarray(rows, np.int64).reshape(-1, 4)


def bins_to_image(bins, feature_size, image_size):
    """Feature-cell rectangles to image-pixel rectangles.

    The feature map is taken to cover the image uniformly (as the model's
    bilinear resize of the logits back to the input size assumes): cell row
    `i` of `h` covers image rows `i * H / h` to `(i + 1) * H / h`, so the
    rectangle `[a, b)` becomes `[floor(a * H / h), ceil(b * H / h))`.

    Args:
        bins: `(num_keys, 4)` rectangles from `pyramid_bins`.
        feature_size: `(h, w)` of the feature map.
        image_size: `(H, W)` of the image.

    Returns:
        `(num_keys, 4)` int array `(top, bottom, left, right)` in pixels.

    Example:

    >>> bins_to_image(pyramid_bins((4, 4), (2,)), (4, 4), (32, 16))[3].tolist()
    [16, 32, 8, 16]
    """
    bins = np.asarray(bins, np.int64)
    if bins.ndim != 2 or bins.shape[1] != 4:
        raise ValueError(f"`bins` must have shape (num_keys, 4), got {bins.shape}.")
    h, w = check_pair(feature_size, "feature_size")
    big_h, big_w = check_pair(image_size, "image_size")
    out = np.empty_like(bins)
    out[:, 0] = bins[:, 0] * big_h // h
    out[:, 1] = -((-bins[:, 1] * big_h) // h)
    out[:, 2] = bins[:, 2] * big_w // w
    out[:, 3] = -((-bins[:, 3] * big_w) // w)
    return out


def paint_keys(weights, key_size, image_size, pool_scales=(1, 3, 6, 8), relative=False):
    """An image-sized map of one query's attention over the pyramid keys.

    Each key's weight is spread evenly over the image rectangle of its bin
    (`weight / area` on each pixel), and the contributions are summed, so
    the map sums to `sum(weights)` and shows how much each pixel's features
    contribute to the query's context.

    Args:
        weights: `(num_keys,)` attention weights of one query (or any
            per-key values).
        key_size: `(h, w)` of the key feature map.
        image_size: `(H, W)` of the image.
        pool_scales: the pyramid. Defaults to `(1, 3, 6, 8)`.
        relative: divide by the map of uniform weights (`1 / num_keys`
            each). Where bins overlap (a size not divisible by a scale) a
            pixel belongs to two bins of that scale and the plain map is
            brighter there whatever the weights; the relative map is, at
            each pixel, the mean of `num_keys * weight` over the keys
            covering it (weighted by `1 / area`): 1 everywhere for uniform
            attention, above 1 where the query attends more than uniformly.

    Returns:
        `(H, W)` float64 array.

    Example:

    >>> weights = np.zeros(110); weights[0] = 1.0   # all on the 1x1 bin
    >>> heat = paint_keys(weights, (8, 8), (64, 64))
    >>> float(heat.min()) == float(heat.max()) == 1 / 64**2
    True
    """
    weights = np.asarray(weights, np.float64)
    bins = pyramid_bins(key_size, pool_scales)
    if weights.shape != (len(bins),):
        raise ValueError(
            f"`weights` must have shape ({len(bins)},) for pool_scales "
            f"{tuple(pool_scales)}, got {weights.shape}."
        )
    image_size = check_pair(image_size, "image_size")
    boxes = bins_to_image(bins, key_size, image_size)
    heat = _paint(weights, boxes, image_size)
    if relative:
        heat = heat / _paint(np.full(len(bins), 1.0 / len(bins)), boxes, image_size)
    return heat


def _paint(weights, boxes, image_size):
    """Sum over keys of `weight / area` on each key's rectangle, through a
    2-D difference array."""
    big_h, big_w = image_size
    diff = np.zeros((big_h + 1, big_w + 1), np.float64)
    for weight, (y0, y1, x0, x1) in zip(weights, boxes):
        value = weight / ((y1 - y0) * (x1 - x0))
        diff[y0, x0] += value
        diff[y0, x1] -= value
        diff[y1, x0] -= value
        diff[y1, x1] += value
    return np.cumsum(np.cumsum(diff, 0), 1)[:big_h, :big_w]


@dataclasses.dataclass
class BlockAttention:
    """The attention weights of one block for a batch of images.

    Attributes:
        weights: `(batch, q_h, q_w, num_keys)` float array; each query's
            weights sum to one.
        query_size: `(h, w)` of the query feature map before any query
            max-pooling.
        key_size: `(h, w)` of the key feature map.
        image_size: `(H, W)` of the input images.
        pool_scales: the key pyramid.
        query_scale: the block's query max-pooling factor.
        block: the layer name.
    """

    weights: np.ndarray
    query_size: tuple
    key_size: tuple
    image_size: tuple
    pool_scales: tuple
    query_scale: int = 1
    block: str = ""

    def query_index(self, pixel):
        """The `(row, col)` of the query whose cell holds image `pixel`.

        Args:
            pixel: `(y, x)` in image pixels.
        """
        y, x = (int(v) for v in pixel)
        big_h, big_w = self.image_size
        if not (0 <= y < big_h and 0 <= x < big_w):
            raise ValueError(f"`pixel` {pixel!r} is outside the {big_h}x{big_w} image.")
        h, w = self.query_size
        q_h, q_w = self.weights.shape[1:3]
        row = min(y * h // big_h // self.query_scale, q_h - 1)
        col = min(x * w // big_w // self.query_scale, q_w - 1)
        return row, col

    def for_pixel(self, pixel, index=0):
        """The `(num_keys,)` weights of the query at image `pixel` of image
        `index` of the batch."""
        row, col = self.query_index(pixel)
        return self.weights[index, row, col]

    def per_scale(self, pixel, index=0):
        """The weights of the query at `pixel` split by pyramid scale: a list
        of `(s, s)` grids, one per scale."""
        weights = self.for_pixel(pixel, index)
        grids, start = [], 0
        for s in self.pool_scales:
            grids.append(weights[start : start + s * s].reshape(s, s))
            start += s * s
        return grids

    def heatmap(self, pixel, index=0, relative=False):
        """The image-sized map (`paint_keys`, with its `relative`) of the
        query at `pixel`."""
        return paint_keys(
            self.for_pixel(pixel, index), self.key_size, self.image_size, self.pool_scales, relative
        )


def block_attention(model, images, block="context", stage=0):
    """Run an `ANNSegmenter` on images and return one block's attention.

    Args:
        model: an `ANNSegmenter` (or a functional model with an `AFNB` /
            `APNB` layer).
        images: `(batch, H, W, 3)` RGB images in [0, 255].
        block: `"context"` (APNB, self-attention on the head's features),
            `"fusion"` (AFNB: stage-4 queries over stage-3 keys) or a layer
            name (`"decode_head.context"` for a sub-layer of the head).
        stage: which query scale's attention (index into the block's
            `query_scales`). Defaults to 0.

    Returns:
        A `BlockAttention`.

    Example:

    >>> import keras_ann
    >>> model = keras_ann.ANNSegmenter("resnet18_d8", num_classes=3)
    >>> images = np.random.uniform(0, 255, (1, 64, 48, 3)).astype("float32")
    >>> attention = block_attention(model, images, "context")
    >>> attention.weights.shape, attention.heatmap((10, 20)).shape
    ((1, 8, 6, 110), (64, 48))
    """
    import keras

    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"`images` must have shape (batch, H, W, 3), got {images.shape}.")
    name = BLOCKS.get(block, block)
    owner_name, _, sub_layer = name.partition(".")
    try:
        owner = model.get_layer(owner_name)
        layer = getattr(owner, sub_layer) if sub_layer else owner
    except (ValueError, AttributeError) as error:
        raise ValueError(
            f"`block` must be one of {sorted(BLOCKS)} or a layer name of the model; "
            f"{model.name!r} has no layer {name!r}."
        ) from error
    if not hasattr(layer, "attention_scores") or not hasattr(layer, "stages"):
        raise ValueError(f"`block` {name!r} is a {type(layer).__name__}, not an AFNB or APNB.")
    if not 0 <= int(stage) < len(layer.stages):
        raise ValueError(f"`stage` must be in [0, {len(layer.stages)}), got {stage!r}.")
    model_inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    probe = keras.Model(model_inputs, owner.input, name=f"{owner_name}_inputs")
    inputs = probe(images, training=False)
    if sub_layer == "context":  # APNB's input inside `ANNHead`
        inputs = owner.context_inputs(inputs, training=False)
    weights = layer.attention_scores(inputs, training=False)[int(stage)]
    query_feats, key_feats = layer._split_inputs(inputs)
    return BlockAttention(
        weights=keras.ops.convert_to_numpy(weights).astype(np.float32),
        query_size=tuple(int(d) for d in query_feats.shape[1:3]),
        key_size=tuple(int(d) for d in key_feats.shape[1:3]),
        image_size=tuple(images.shape[1:3]),
        pool_scales=tuple(layer.key_pool_scales),
        query_scale=layer.stages[int(stage)].query_scale,
        block=name,
    )
