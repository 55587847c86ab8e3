"""Style swap (Chen & Schmidt 2016): patch-based style transfer at one VGG layer,
inverted by a feed-forward network or by image optimisation."""
