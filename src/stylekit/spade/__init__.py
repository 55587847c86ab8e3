"""SPADE: spatially-adaptive normalisation and semantic image synthesis (Park et al., CVPR 2019).

``model``: the SPADE residual block, generator, VAE image encoder and
multi-scale discriminator; ``losses``: hinge, feature matching, VGG, KL;
``data``: label maps paired with images; ``train``: the training task for the
shared loop; ``synthesize``: images from label maps, and the per-class colour
error; ``synthetic``: a procedural labelled dataset. See docs/spade.md.
"""

from .model import MultiscaleDiscriminator, SPADEGenerator, SPADEModelConfig, SPADEResBlock  # noqa: F401
from .synthesize import Synthesizer  # noqa: F401

__all__ = ["SPADEResBlock", "SPADEGenerator", "SPADEModelConfig", "MultiscaleDiscriminator", "Synthesizer"]
