"""Small calls, as in a user's own loop or online inference: one-row ``predict``,
``evaluate`` on W1's data, ``train_step`` on a 16-row batch and a one-epoch ``fit``, on the W1
and W2 networks, fastbp and the NumPy reference side by side."""

from .common import WORKLOADS, implementation, make_data, make_model


class SmallCalls:
    params = (["W1", "W2"], ["fastbp", "reference"])
    param_names = ["workload", "implementation"]

    def setup(self, workload, impl):
        sizes, n, self.batch_size, dtype = WORKLOADS[workload]
        self.X, self.y = make_data(sizes, n, dtype)
        self.model = make_model(implementation(impl), sizes, dtype)
        self.row = self.X[:1]
        self.model.fit(self.X, self.y, epochs=1, batch_size=self.batch_size)  # compile, size workspace
        self.model.predict(self.row)
        self.model.evaluate(self.X[:150], self.y[:150])
        self.model.train_step(self.X[:16], self.y[:16])

    def time_predict_one_row(self, workload, impl):
        self.model.predict(self.row)

    def time_evaluate_150_rows(self, workload, impl):
        self.model.evaluate(self.X[:150], self.y[:150])

    def time_train_step_16_rows(self, workload, impl):
        self.model.train_step(self.X[:16], self.y[:16])

    def time_fit_one_epoch(self, workload, impl):
        self.model.fit(self.X, self.y, epochs=1, batch_size=self.batch_size)
