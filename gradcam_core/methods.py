"""CAM methods. Each one turns a layer's captured activations and gradients into a map.

All methods share one pipeline (``CamMethod.raw_map``: weights per channel, then a weighted sum of the
activation channels); a method overrides only its weighting step, or the whole map where the weighting is per
pixel. Formulas follow the papers and, where the papers leave a choice open, pytorch-grad-cam, so the two agree.

Shapes: ``acts`` and ``grads`` are (N, C, h, w) tensors on the same device; maps are (N, h, w), before ReLU.
"""

from __future__ import annotations

import torch

from gradcam_core.scorecam import ScoreCAM


def weighted_sum(weights: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """sum_c weights[n, c] * acts[n, c] -> (N, h, w), as one batched matrix product over a view of ``acts``
    (``einsum`` copied the activations first and took ~3x as long over resnet50's 53 layers)."""
    n, _, h, w = acts.shape
    if weights.dtype != acts.dtype:
        weights = weights.to(acts.dtype)
    return torch.bmm(weights.unsqueeze(1), acts.flatten(2)).view(n, h, w)


class CamMethod:
    """A CAM method: by default, weights per channel (``channel_weights``), then the weighted sum of the activation
    channels. Override ``channel_weights`` for a new weighting, or ``raw_map`` for a map weighted per pixel."""

    name: str = ""
    title: str = ""
    needs_gradients: bool = True
    weights_channels: bool = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # True when the map is the plain weighted sum: the engine may then take the weights and the sum apart.
        cls.weights_channels = cls.raw_map is CamMethod.raw_map

    def channel_weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def raw_map(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        weights = self.channel_weights(acts, grads)
        return weighted_sum(weights, acts)


class GradCAM(CamMethod):
    """Selvaraju et al. 2017: weight = spatial mean of the gradient."""

    name, title = "gradcam", "Grad-CAM"

    def channel_weights(self, acts, grads):
        return grads.mean(dim=(2, 3))


class GradCAMPlusPlus(CamMethod):
    """Chattopadhay et al. 2018, closed form for an exponential of the score (as in pytorch-grad-cam).

    Computed in float64: the denominator 2 g^2 + sum(A) g^3 has a pole when a layer's activations sum to a
    negative value (any conv output before its ReLU), and near it float32 rounding alone moved the weights of
    resnet18's layer1.1.conv2 by 16%. pytorch-grad-cam computes in float32, so the two differ there by
    their float32 error; fed the same float64 tensors they agree.
    """

    name, title = "gradcampp", "Grad-CAM++"

    def channel_weights(self, acts, grads):
        acts, grads = acts.double(), grads.double()
        grads2 = grads.pow(2)
        grads3 = grads2 * grads
        sum_acts = acts.sum(dim=(2, 3), keepdim=True)
        alpha = grads2 / (2 * grads2 + sum_acts * grads3 + 1e-6)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        return (torch.relu(grads) * alpha).sum(dim=(2, 3))

    def raw_map(self, acts, grads):
        weights = self.channel_weights(acts, grads)
        return weighted_sum(weights, acts.double()).to(acts.dtype)


class XGradCAM(CamMethod):
    """Fu et al. 2020: gradients weighted by the normalised activations."""

    name, title = "xgradcam", "XGrad-CAM"

    def channel_weights(self, acts, grads):
        sum_acts = acts.sum(dim=(2, 3), keepdim=True)
        return (grads * acts / (sum_acts + 1e-7)).sum(dim=(2, 3))


class HiResCAM(CamMethod):
    """Draelos & Carin 2020: element-wise gradient x activation, summed over channels."""

    name, title = "hirescam", "HiResCAM"

    def raw_map(self, acts, grads):
        return (grads * acts).sum(dim=1)


class LayerCAM(CamMethod):
    """Jiang et al. 2021: positive gradients as per-pixel weights."""

    name, title = "layercam", "LayerCAM"

    def raw_map(self, acts, grads):
        return (torch.relu(grads) * acts).sum(dim=1)


class EigenCAM(CamMethod):
    """Muhammad & Yeasin 2020: projection of the activations on their first principal component.

    Gradient-free, so the map does not depend on the target class. The sign of a principal component is
    arbitrary (it depends on the SVD routine); we fix it so that the map correlates positively with the
    channel-mean activation, i.e. it highlights where the layer responds. pytorch-grad-cam keeps whatever sign
    its SVD returns, so the two agree up to that sign.
    """

    name, title = "eigencam", "Eigen-CAM"
    needs_gradients = False

    def raw_map(self, acts, grads):
        n, c, h, w = acts.shape
        flat = torch.nan_to_num(acts.reshape(n, c, h * w).float())  # (n, channels, pixels), contiguous
        centred = flat - flat.mean(dim=2, keepdim=True)
        projection = torch.einsum("ncp,nc->np", centred, self._first_component(centred))
        channel_mean = flat.mean(dim=1)
        sign = torch.sign((projection * channel_mean).sum(dim=1, keepdim=True))
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        return (projection * sign).reshape(n, h, w).to(acts.dtype)

    @staticmethod
    def _first_component(centred: torch.Tensor) -> torch.Tensor:
        """First principal direction over channels of each (channels, pixels) matrix, (n, channels).

        From ``eigh`` of the smaller Gram matrix instead of a full SVD: only one component is needed, and on a
        CPU ``torch.linalg.svd`` of a 784x512 activation took seconds where this takes milliseconds. The Gram
        product runs in float32 (the bulk of the work), the small eigendecomposition in float64.
        """
        channels, pixels = centred.shape[1:]
        if channels <= pixels:
            _, vectors = torch.linalg.eigh((centred @ centred.transpose(1, 2)).double())
            return vectors[:, :, -1].to(centred.dtype)
        _, vectors = torch.linalg.eigh((centred.transpose(1, 2) @ centred).double())
        component = torch.einsum("ncp,np->nc", centred, vectors[:, :, -1].to(centred.dtype))
        return component / component.norm(dim=1, keepdim=True).clamp_min(1e-30)


CAM_METHODS: dict[str, CamMethod] = {
    m.name: m for m in (GradCAM(), GradCAMPlusPlus(), HiResCAM(), XGradCAM(), LayerCAM(), EigenCAM(), ScoreCAM())
}
METHOD_NAMES: tuple[str, ...] = tuple(CAM_METHODS)


def resolve_methods(methods) -> list[CamMethod]:
    if isinstance(methods, str):
        methods = (methods,)
    resolved = []
    for name in methods:
        if hasattr(name, "needs_gradients"):  # a configured method object, e.g. ScoreCAM(batch_size=64)
            resolved.append(name)
            continue
        key = str(name).lower().replace("-", "").replace("_", "").replace("+", "p")
        if key not in CAM_METHODS:
            raise ValueError(f"unknown CAM method {name!r}; choose from {', '.join(METHOD_NAMES)}")
        if CAM_METHODS[key] not in resolved:
            resolved.append(CAM_METHODS[key])
    if not resolved:
        raise ValueError(f"methods is empty; choose one or more of {', '.join(METHOD_NAMES)}")
    return resolved


def normalise_maps(raw: torch.Tensor) -> torch.Tensor:
    """ReLU, then min-max to [0, 1] per map over the last two dims; an all-zero map stays all zero."""
    cam = torch.relu(raw)
    flat = cam.reshape(*cam.shape[:-2], -1)
    low, high = torch.aminmax(flat, dim=-1, keepdim=True)
    span = high - low
    return flat.sub_(low).div_(torch.where(span > 0, span, 1.0)).reshape(cam.shape)
