"""SinGAN (Shaham, Dekel & Michaeli, ICCV 2019): a generative model learned from a single image.

* :mod:`.model` - the per-scale generator and critic, the frozen pyramid (sampling at any size);
* :mod:`.train` - the coarse-to-fine trainer on the shared training loop;
* :mod:`.apps` - the paper's applications: paint-to-image, harmonisation, editing, super-resolution;
* :mod:`.sifid` - SIFID-VGG, a single-image FID on our VGG-19 relu3_1 features (NOT the paper's
  Inception-based SIFID: the numbers are not comparable with the paper's).
"""
