"""Gatys et al. (2016): style transfer by image optimisation against VGG features and Gram matrices."""
