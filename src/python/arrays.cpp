// numpy arrays <-> quiver::Tensor, without copies where the layout allows.
#include <cstring>
#include <memory>

#include "python/common.hpp"
#include "quiver/core/half.hpp"

namespace quiver::python {

namespace {

using detail_api = py::detail::npy_api;
constexpr int kNpyHalf = 23;  // NPY_HALF: not in pybind11's list of type numbers

py::detail::PyArray_Proxy* proxy(py::handle a) { return py::detail::array_proxy(a.ptr()); }
py::detail::PyArrayDescr_Proxy* descr_of(py::handle a) {
  return py::detail::array_descriptor_proxy(proxy(a)->descr);
}

// The DType of a numpy dtype (kind + item size, so that platform aliases of int64 all match).
DType dtype_of_descr(const py::detail::PyArrayDescr_Proxy* d) {
  const int n = d->elsize;
  switch (d->kind) {
    case 'f': return n == 4 ? DType::F32 : n == 8 ? DType::F64 : n == 2 ? DType::F16 : DType::Undefined;
    case 'i': return n == 1 ? DType::I8 : n == 2 ? DType::I16 : n == 4 ? DType::I32 : n == 8 ? DType::I64 : DType::Undefined;
    case 'u': return n == 1 ? DType::U8 : n == 2 ? DType::U16 : n == 4 ? DType::U32 : n == 8 ? DType::U64 : DType::Undefined;
    case 'b': return DType::Bool;
    case 'U': case 'S': case 'O': return DType::String;
    default: return DType::Undefined;
  }
}

int numpy_type_num(DType t) {
  switch (t) {
    case DType::F32: case DType::BF16: return detail_api::NPY_FLOAT_;
    case DType::F64: return detail_api::NPY_DOUBLE_;
    case DType::F16: return kNpyHalf;
    case DType::I8: return detail_api::NPY_INT8_;
    case DType::I16: return detail_api::NPY_INT16_;
    case DType::I32: return detail_api::NPY_INT32_;
    case DType::I64: return detail_api::NPY_INT64_;
    case DType::U8: return detail_api::NPY_UINT8_;
    case DType::U16: return detail_api::NPY_UINT16_;
    case DType::U32: return detail_api::NPY_UINT32_;
    case DType::U64: return detail_api::NPY_UINT64_;
    case DType::Bool: return detail_api::NPY_BOOL_;
    case DType::String: return detail_api::NPY_OBJECT_;
    default: return -1;
  }
}

// numpy's name for a DType ("float32"), for messages that tell the user what to pass.
const char* numpy_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::F16: return "float16";
    case DType::BF16: return "float32 (bfloat16 inputs are rounded from float32)";
    case DType::I8: return "int8";
    case DType::I16: return "int16";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
    case DType::U8: return "uint8";
    case DType::U16: return "uint16";
    case DType::U32: return "uint32";
    case DType::U64: return "uint64";
    case DType::Bool: return "bool";
    case DType::String: return "str, bytes or object";
    default: return "undefined";
  }
}

py::object new_descr(DType t) {
  int num = numpy_type_num(t);
  if (num < 0) throw_error(ErrorCode::Unsupported, std::string("no numpy dtype for ") + std::string(dtype_name(t)));
  return py::reinterpret_steal<py::object>(detail_api::get().PyArray_DescrFromType_(num));
}

bool native_order(const py::detail::PyArrayDescr_Proxy* d) { return d->byteorder != '>'; }

// The error names the input in its location ("tensor 'x'"); the session adds the model.
[[noreturn]] void refuse(std::string_view name, std::string message) {
  throw_error(ErrorCode::InvalidArgument, std::move(message), {"", "", std::string(name)});
}

// A numpy array converted with numpy itself (numpy.ascontiguousarray(value, dtype)).
py::object numpy_convert(py::handle value, DType t) {
  static py::handle ascontiguous = py::object(py::module_::import("numpy").attr("ascontiguousarray")).release();
  return ascontiguous(value, py::reinterpret_borrow<py::object>(new_descr(t)));
}

// String tensors hold std::string objects: always a copy.
void strings_to_tensor(py::handle arr, std::string_view name, InputArray& out) {
  auto* p = proxy(arr);
  std::vector<int64_t> dims(p->dimensions, p->dimensions + p->nd);
  Tensor t = Tensor::empty(DType::String, dims);
  auto* dst = t.data<std::string>();
  // Iterate in C order whatever the layout: numpy's flat iterator does that.
  py::iterator it = py::iter(py::reinterpret_borrow<py::object>(arr).attr("flat"));
  int64_t i = 0;
  for (py::handle v : it) {
    if (i >= t.numel()) break;
    if (PyUnicode_Check(v.ptr())) {
      Py_ssize_t n = 0;
      const char* s = PyUnicode_AsUTF8AndSize(v.ptr(), &n);
      if (!s) throw py::error_already_set();
      dst[i].assign(s, static_cast<size_t>(n));
    } else if (PyBytes_Check(v.ptr())) {
      dst[i].assign(PyBytes_AS_STRING(v.ptr()), static_cast<size_t>(PyBytes_GET_SIZE(v.ptr())));
    } else {
      refuse(name, "element " + std::to_string(i) + " is a " + std::string(Py_TYPE(v.ptr())->tp_name) +
                       ", not str or bytes");
    }
    ++i;
  }
  out.tensor = std::move(t);
  out.owner = py::object();
}

void bf16_from_float32(py::handle arr, InputArray& out) {
  auto* p = proxy(arr);
  std::vector<int64_t> dims(p->dimensions, p->dimensions + p->nd);
  Tensor t = Tensor::empty(DType::BF16, dims);
  const auto* src = reinterpret_cast<const float*>(p->data);
  auto* dst = t.data<uint16_t>();
  for (int64_t i = 0; i < t.numel(); ++i) dst[i] = BFloat16::from_float(src[i]);
  out.tensor = std::move(t);
  out.owner = py::object();
}

}  // namespace

std::string ort_type(DType t) { return "tensor(" + std::string(dtype_name(t)) + ")"; }

py::list shape_to_python(const Shape& s) {
  py::list l(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i].is_fixed()) l[i] = py::int_(s[i].value);
    else if (!s[i].symbol.empty()) l[i] = py::str(s[i].symbol);
    else l[i] = py::none();
  }
  return l;
}

void to_tensor(py::handle value, std::string_view name, DType expected, InputArray& out) {
  const auto& api = detail_api::get();
  py::object arr;
  if (api.PyArray_Check_(value.ptr())) {
    arr = py::reinterpret_borrow<py::object>(value);
  } else if (expected != DType::Undefined && (PyList_Check(value.ptr()) || PyTuple_Check(value.ptr()))) {
    try {
      arr = numpy_convert(value, expected == DType::BF16 ? DType::F32 : expected == DType::String ? DType::String : expected);
    } catch (py::error_already_set& e) {
      refuse(name, std::string("cannot convert the list to ") + numpy_name(expected) + ": " + e.what());
    }
  } else {
    refuse(name, std::string("expected a numpy array, got ") + Py_TYPE(value.ptr())->tp_name +
                     (expected != DType::Undefined ? std::string(" (numpy.asarray(x, dtype=numpy.") + numpy_name(expected) + ") makes one)"
                                                   : std::string()));
  }
  auto* d = descr_of(arr);
  const DType got = dtype_of_descr(d);
  if (got == DType::Undefined)
    refuse(name, "numpy dtype '" + std::string(py::str(py::handle(reinterpret_cast<PyObject*>(d)))) + "' has no tensor type");
  if (expected == DType::String || (expected == DType::Undefined && got == DType::String)) {
    if (got != DType::String) refuse(name, std::string("dtype ") + numpy_name(got) + ", the model expects tensor(string)");
    strings_to_tensor(arr, name, out);
    return;
  }
  const DType want = expected == DType::Undefined ? got : expected;
  if (want == DType::BF16 ? got != DType::F32 : got != want) {
    std::string msg = std::string("dtype ") + numpy_name(got) + " (" + ort_type(got) + "), the model expects " +
                      ort_type(want) + ": convert with .astype(numpy." + numpy_name(want) + ")";
    if (want == DType::BF16) msg = std::string("dtype ") + numpy_name(got) + ", the model expects tensor(bfloat16), passed as float32";
    refuse(name, msg);
  }
  auto* p = proxy(arr);
  const int needed = detail_api::NPY_ARRAY_C_CONTIGUOUS_ | detail_api::NPY_ARRAY_ALIGNED_;
  if ((p->flags & needed) != needed || !native_order(d)) {
    arr = numpy_convert(arr, got);  // same dtype, C order, native byte order: a copy
    p = proxy(arr);
  }
  if (want == DType::BF16) {
    bf16_from_float32(arr, out);
    return;
  }
  static_assert(sizeof(ssize_t) == sizeof(int64_t), "numpy dims are read as int64");
  out.tensor = Tensor::view(want, std::span<const int64_t>(reinterpret_cast<const int64_t*>(p->dimensions),
                                                           static_cast<size_t>(p->nd)),
                            static_cast<void*>(p->data));
  out.owner = std::move(arr);
}

py::object to_numpy(Tensor&& t, bool strings_as_bytes, bool keep_views) {
  const auto& api = detail_api::get();
  static_assert(sizeof(Py_intptr_t) == sizeof(int64_t), "tensor dims are numpy dims");
  const int nd = static_cast<int>(t.rank());
  if (t.dtype() == DType::String) {
    const auto* dims = reinterpret_cast<const Py_intptr_t*>(t.dims().data());
    py::object a = py::reinterpret_steal<py::object>(
        api.PyArray_NewFromDescr_(api.PyArray_Type_, new_descr(DType::String).release().ptr(), nd, dims, nullptr,
                                  nullptr, 0, nullptr));
    if (!a) throw py::error_already_set();
    auto** items = reinterpret_cast<PyObject**>(proxy(a)->data);
    const auto* src = t.data<std::string>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      PyObject* o = nullptr;
      if (!strings_as_bytes) {
        o = PyUnicode_DecodeUTF8(src[i].data(), static_cast<Py_ssize_t>(src[i].size()), nullptr);
        if (!o) PyErr_Clear();  // not UTF-8: handed over as bytes rather than lost
      }
      if (!o) o = PyBytes_FromStringAndSize(src[i].data(), static_cast<Py_ssize_t>(src[i].size()));
      if (!o) throw py::error_already_set();
      Py_XDECREF(items[i]);  // numpy fills new object arrays with None
      items[i] = o;
    }
    return a;
  }
  if (t.dtype() == DType::BF16) {
    Tensor f = Tensor::empty(DType::F32, t.dims());
    const auto* src = t.data<uint16_t>();
    for (int64_t i = 0; i < t.numel(); ++i) f.data<float>()[i] = BFloat16::to_float(src[i]);
    t = std::move(f);
  }
  // A view's memory may belong to something the tensor does not keep alive (a run state): copy it.
  // Owned storage is 64-byte aligned; a view may not even be aligned for its element type.
  const bool aligned = reinterpret_cast<uintptr_t>(t.raw()) % dtype_size(t.dtype()) == 0;
  if (t.is_view() && !(keep_views && aligned)) t = t.clone();
  if (t.numel() == 0) return py::array(py::reinterpret_borrow<py::dtype>(new_descr(t.dtype())), t.dims());
  auto* owned = new Tensor(std::move(t));
  const auto* dims = reinterpret_cast<const Py_intptr_t*>(owned->dims().data());
  py::capsule base(owned, [](void* p) { delete static_cast<Tensor*>(p); });
  PyObject* a = api.PyArray_NewFromDescr_(api.PyArray_Type_, new_descr(owned->dtype()).release().ptr(), nd, dims,
                                          nullptr, owned->raw(), detail_api::NPY_ARRAY_WRITEABLE_, nullptr);
  if (!a) throw py::error_already_set();
  // numpy takes over the reference to the capsule: the array now owns the tensor.
  if (api.PyArray_SetBaseObject_(a, base.release().ptr()) != 0) {
    Py_DECREF(a);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(a);
}

}  // namespace quiver::python
