"""AdaIN: arbitrary style transfer with adaptive instance normalisation (Huang & Belongie 2017)."""
