// Shared pieces of the Python module `quiver._quiver`: exception classes and numpy <-> Tensor.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <string_view>
#include <vector>

#include "quiver/core/model.hpp"

namespace quiver::python {

namespace py = pybind11;

// quiver.Error and one subclass per ErrorCode; quiver::Error thrown into Python becomes one of them.
void register_errors(py::module_& m);
// The exception object for an error that is a value (an InferResult's error, a future's exception).
py::object error_object(const Error& e);

void register_session(py::module_& m);
void register_client(py::module_& m);

// ONNX Runtime's NodeArg: a model input or output as get_inputs() / get_outputs() describe it.
struct NodeArg {
  std::string name;
  Shape shape;
  DType dtype = DType::Undefined;
};

// ONNX Runtime's type string, "tensor(float)".
std::string ort_type(DType t);
// NodeArg.shape as ONNX Runtime gives it: ints for fixed dims, strings for named ones, None otherwise.
py::list shape_to_python(const Shape& s);

// An input as the engine sees it, and the Python object that owns its memory while the call runs.
struct InputArray {
  Tensor tensor;
  py::object owner;
};

// How a feed value becomes a tensor (GIL held).
//   expected: the model's dtype for the input (Undefined: take the array's dtype, as the client does).
//   A numpy array of that dtype that is C-contiguous, aligned and in native byte order is used in
//   place; one of that dtype in another layout is copied into a C-contiguous array (ONNX Runtime
//   does the same); any other dtype is refused, naming the input and both dtypes. Lists and tuples
//   are converted to the model's dtype with numpy (ONNX Runtime does that too) when `expected` is
//   known. String inputs take arrays of str, bytes or objects and are copied.
void to_tensor(py::handle value, std::string_view name, DType expected, InputArray& out);

// A numpy array that owns `t`'s memory (moved in: no copy for owned numeric tensors). Views are
// copied unless `keep_views` says they hold their memory alive themselves (the client's views of a
// response message) and are aligned. Strings become an object array of str (bytes when
// `strings_as_bytes`, as KServe BYTES are); BF16 becomes float32 (exact).
py::object to_numpy(Tensor&& t, bool strings_as_bytes = false, bool keep_views = false);

}  // namespace quiver::python
