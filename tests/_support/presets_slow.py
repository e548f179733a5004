"""A slower fidelity preset for the fault and signal tests: a trial is still training when they strike."""

SLOW_FIDELITY = """
[slow]           # tests only: digits with a longer target budget
data = "digits"
width = 32
epochs = 30
source_epochs = 4
batch_size = 64
lr = 0.01
bnn_lr = 0.01
eval_samples = 4
"""
