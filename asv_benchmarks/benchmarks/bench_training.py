"""One training epoch and inference on the four standard workloads, fastbp and the NumPy
reference side by side (every run carries its own baseline)."""

from .common import WORKLOADS, implementation, make_data, make_model


class TrainEpoch:
    params = (list(WORKLOADS), ["fastbp", "reference"])
    param_names = ["workload", "implementation"]
    repeat = (1, 5, 30.0)
    timeout = 300

    def setup(self, workload, impl):
        sizes, n, self.batch_size, dtype = WORKLOADS[workload]
        self.X, self.y = make_data(sizes, n, dtype)
        self.model = make_model(implementation(impl), sizes, dtype)
        self.model.fit(self.X, self.y, epochs=1, batch_size=self.batch_size)  # compile, size workspace

    def time_epoch(self, workload, impl):
        self.model.fit(self.X, self.y, epochs=1, batch_size=self.batch_size)

    def peakmem_epoch(self, workload, impl):
        self.model.fit(self.X, self.y, epochs=1, batch_size=self.batch_size)


class Predict:
    params = (["W2", "W3"], ["fastbp", "reference"])
    param_names = ["workload", "implementation"]

    def setup(self, workload, impl):
        sizes, n, _, dtype = WORKLOADS[workload]
        self.X, _ = make_data(sizes, n, dtype)
        self.model = make_model(implementation(impl), sizes, dtype)
        self.model.predict(self.X[:10])

    def time_predict(self, workload, impl):
        self.model.predict(self.X)
