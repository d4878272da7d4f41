"""Each kernel family alone, on W3-sized layers (batch 128, float32), and each optimizer's
fused update over 1M parameters; with fastbp's own size rules for splitting over the threads
(``codes.PAR_PRODUCT``, ``codes.PAR_ELEMENTS``, ``blas.BLOCKS``) and, as the model does,
OpenBLAS on one thread while products may be split."""

import numpy as np

import fastbp
from fastbp.kernels import blas, codes
from fastbp import kernels as K

RNG = np.random.default_rng(0)
SPLIT = (blas.PRODUCT_SPLIT_ABOVE, codes.PAR_ELEMENTS, blas.BLOCKS)


def _rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


class DenseLayer:
    params = ["784x256", "256x256", "256x10"]
    param_names = ["n_in x n_out (batch 128)"]

    def setup(self, shape):
        n_in, n_out = map(int, shape.split("x"))
        self.A, self.W, self.b = _rand(128, n_in), _rand(n_in, n_out), _rand(n_out)
        self.Z, self.D = _rand(128, n_out), _rand(128, n_out)
        self.gW, self.gb, self.Dp = _rand(n_in, n_out), _rand(n_out), _rand(128, n_in)
        self.time_forward(shape)
        self.time_backward(shape)

    def time_forward(self, shape):
        with blas.one_blas_thread():
            K.dense_forward(self.Z, self.A, self.W, self.b, codes.RELU, 0.01, *SPLIT)

    def time_backward(self, shape):
        with blas.one_blas_thread():
            K.dense_backward(self.Dp, self.gW, self.gb, self.D, self.A, self.W, codes.RELU, 0.01, True, *SPLIT)


class FusedLoss:
    params = ["cross_entropy", "binary_cross_entropy", "mse"]
    param_names = ["loss"]

    def setup(self, loss):
        self.out = {"cross_entropy": codes.SOFTMAX, "binary_cross_entropy": codes.SIGMOID, "mse": codes.LINEAR}[loss]
        self.code = {"cross_entropy": codes.CROSS_ENTROPY, "binary_cross_entropy": codes.BINARY_CROSS_ENTROPY,
                     "mse": codes.MSE}[loss]
        self.Z, self.b, self.D = _rand(1024, 10), _rand(10), _rand(1024, 10)
        self.T = np.zeros((1024, 10), np.float32)
        self.T[np.arange(1024), RNG.integers(0, 10, 1024)] = 1
        self.time_output_loss(loss)

    def time_output_loss(self, loss):
        K.output_loss(self.Z, self.D, self.b, self.T, self.out, self.code)


class OptimizerUpdate:
    params = ["SGD", "Momentum", "Nesterov", "RMSprop", "Adam", "AdamW", "AdaGrad"]
    param_names = ["optimizer"]

    def setup(self, name):
        opt = {"SGD": fastbp.SGD(0.01), "Momentum": fastbp.SGD(0.01, momentum=0.9),
               "Nesterov": fastbp.SGD(0.01, momentum=0.9, nesterov=True), "RMSprop": fastbp.RMSprop(),
               "Adam": fastbp.Adam(), "AdamW": fastbp.AdamW(), "AdaGrad": fastbp.AdaGrad()}[name]
        n = 1_000_000
        self.p, self.g = _rand(n), _rand(n)
        self.slots = np.zeros((opt.n_slots, n), np.float32)
        self.hyper = opt.hyper
        self.time_update(name)

    def time_update(self, name):
        K.optimizer_step(self.p, self.slots, self.g, 10, self.hyper.lr, self.hyper, codes.PAR_ELEMENTS)


class ClipNorm:
    def setup(self):
        self.g = _rand(1_000_000)

    def time_clip_global_norm(self):
        K.clip_global_norm(self.g, 1e9)
