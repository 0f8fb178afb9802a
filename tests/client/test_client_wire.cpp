// Request/response conversions of the client: raw contents (zero-copy outputs), BYTES framing,
// typed contents from other servers, malformed responses, metadata -> ModelInfo.
#include <gtest/gtest.h>

#include <cstring>

#include "client/metadata.hpp"
#include "kserve/infer_messages.hpp"

using namespace quiver;
using namespace quiver::client;
namespace wire = quiver::kserve;  // the KServe wire library (src/kserve)

TEST(Wire, EncodeRequestRawContentsAndParameters) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor s = Tensor::empty(DType::String, {2});
  s.data<std::string>()[0] = "ab";
  s.data<std::string>()[1] = "";
  InferOptions o;
  o.model_version = "3";
  o.request_id = "r1";
  o.priority = 2;
  o.outputs = {"y"};
  auto msg = wire::encode_request("m", {{"x", x}, {"s", s}}, o, 5'000'000);
  EXPECT_EQ(msg->model_name(), "m");
  EXPECT_EQ(msg->model_version(), "3");
  EXPECT_EQ(msg->id(), "r1");
  EXPECT_EQ(msg->parameters().at("priority").uint64_param(), 2u);
  EXPECT_EQ(msg->parameters().at("timeout").int64_param(), 5000);  // microseconds
  ASSERT_EQ(msg->inputs_size(), 2);
  EXPECT_EQ(msg->inputs(0).datatype(), "FP32");
  EXPECT_EQ(msg->inputs(0).shape(1), 3);
  EXPECT_EQ(msg->raw_input_contents(0).size(), 24u);
  EXPECT_EQ(msg->inputs(1).datatype(), "BYTES");
  EXPECT_EQ(msg->raw_input_contents(1), std::string("\x02\0\0\0ab\0\0\0\0", 10));
  EXPECT_EQ(msg->outputs(0).name(), "y");
  // Round trip through the fallback's decoder: views into the message.
  auto back = wire::decode_inputs(msg);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_TRUE(back[0].tensor.is_view());
  EXPECT_EQ(back[0].tensor.data<float>()[5], 6.f);
  EXPECT_EQ(back[1].tensor.data<std::string>()[0], "ab");
  EXPECT_EQ(back[1].tensor.data<std::string>()[1], "");
  EXPECT_THROW(wire::encode_request("m", {}, o, 0), Error);
  EXPECT_THROW(wire::encode_request("m", {{"x", Tensor()}}, o, 0), Error);
}

TEST(Wire, DecodeOutputsRawTypedAndMalformed) {
  auto r = std::make_shared<inference::ModelInferResponse>();
  r->set_model_name("m");
  auto* o = r->add_outputs();
  o->set_name("y");
  o->set_datatype("INT64");
  o->add_shape(2);
  int64_t v[2] = {7, -8};
  r->add_raw_output_contents(std::string(reinterpret_cast<const char*>(v), 16));
  auto out = wire::decode_outputs(r);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].tensor.is_view());
  EXPECT_EQ(out[0].tensor.data<int64_t>()[1], -8);

  // Typed contents (servers that do not send raw): copied.
  auto t = std::make_shared<inference::ModelInferResponse>();
  auto* to = t->add_outputs();
  to->set_name("z");
  to->set_datatype("FP32");
  to->add_shape(1);
  to->add_shape(2);
  to->mutable_contents()->add_fp32_contents(1.5f);
  to->mutable_contents()->add_fp32_contents(-2.f);
  auto tz = wire::decode_outputs(t);
  EXPECT_EQ(tz[0].tensor.data<float>()[1], -2.f);
  to->mutable_contents()->add_fp32_contents(3.f);  // 3 values for 2 elements
  EXPECT_THROW(wire::decode_outputs(t), Error);

  // Raw size mismatch names the tensor.
  r->mutable_raw_output_contents(0)->resize(15);
  try {
    wire::decode_outputs(r);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Parse);
    EXPECT_EQ(e.where().tensor, "y");
  }
  o->set_datatype("NOPE");
  EXPECT_THROW(wire::decode_outputs(r), Error);
}

TEST(Wire, MetadataToModelInfo) {
  inference::ModelMetadataResponse m;
  m.set_name("mlp");
  m.add_versions("1");
  m.add_versions("2");
  m.set_platform("onnxruntime_onnx");
  auto* i = m.add_inputs();
  i->set_name("x");
  i->set_datatype("FP32");
  i->add_shape(-1);
  i->add_shape(16);
  auto* o = m.add_outputs();
  o->set_name("y");
  o->set_datatype("FP32");
  o->add_shape(-1);
  o->add_shape(5);
  inference::ModelConfig c;
  c.set_max_batch_size(64);
  (*c.mutable_parameters())["quiver.sha256"].set_string_value("abc");
  ModelMeta meta = meta_from_server(m, &c, "");
  EXPECT_EQ(meta.info.name, "mlp");
  EXPECT_EQ(meta.info.version, "2");
  EXPECT_EQ(meta.info.backend, "remote");
  EXPECT_EQ(meta.info.max_batch, 64);
  EXPECT_EQ(meta.info.sha256, "abc");
  ASSERT_EQ(meta.info.inputs.size(), 1u);
  EXPECT_EQ(meta.info.inputs[0].shape[0].symbol, "batch");
  EXPECT_EQ(meta.info.inputs[0].shape[1].value, 16);
  EXPECT_EQ(meta_from_server(m, nullptr, "1").info.version, "1");
  i->set_datatype("WHAT");
  EXPECT_THROW(meta_from_server(m, &c, ""), Error);
}

TEST(Wire, SharedMemoryOutputsRequestedAndCheckedOnTheWayBack) {
  alignas(64) static char region[4096];
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 4});
  wire::ShmTarget target;
  target.region = "r";
  target.base = region;
  target.offset = 1024;
  target.inputs = false;
  target.outputs = {{"y", 1024, 16}, {"z", 1088, 8}};
  InferOptions o;
  o.outputs = {"ignored"};
  auto msg = wire::encode_request("m", {{"x", x}}, o, 0, &target);
  ASSERT_EQ(msg->raw_input_contents_size(), 1);  // inputs in the message
  ASSERT_EQ(msg->outputs_size(), 2);
  EXPECT_EQ(msg->outputs(0).name(), "y");
  EXPECT_EQ(msg->outputs(0).parameters().at("shared_memory_region").string_param(), "r");
  EXPECT_EQ(msg->outputs(0).parameters().at("shared_memory_byte_size").int64_param(), 16);
  EXPECT_EQ(msg->outputs(1).parameters().at("shared_memory_offset").int64_param(), 1088);

  // The server's answer: y written at 1024 (16 bytes), one raw entry per output, empty.
  auto resp = [&](const std::string& region_name, int64_t off, int64_t size, int64_t dim) {
    auto r = std::make_shared<inference::ModelInferResponse>();
    r->set_model_name("m");
    auto* y = r->add_outputs();
    y->set_name("y");
    y->set_datatype("FP32");
    y->add_shape(1);
    y->add_shape(dim);
    auto& p = *y->mutable_parameters();
    p["shared_memory_region"].set_string_param(region_name);
    p["shared_memory_byte_size"].set_int64_param(size);
    p["shared_memory_offset"].set_int64_param(off);
    r->add_raw_output_contents();
    return r;
  };
  float vals[4] = {9, 8, 7, 6};
  std::memcpy(region + 1024, vals, 16);
  auto keep = std::make_shared<int>(1);
  wire::ShmOutputs so{"r", region, 1024, 2048, keep};
  auto out = wire::decode_outputs(resp("r", 1024, 16, 4), &so);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.raw(), static_cast<const void*>(region + 1024));
  EXPECT_EQ(out[0].tensor.data<float>()[3], 6.f);
  EXPECT_EQ(keep.use_count(), 3);  // the view holds the slot (so, out, keep)
  out.clear();
  EXPECT_EQ(keep.use_count(), 2);
  auto fails = [&](std::shared_ptr<inference::ModelInferResponse> r, const wire::ShmOutputs* s, const char* what) {
    try {
      wire::decode_outputs(r, s);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'y'"), std::string::npos) << e.what();
    }
  };
  fails(resp("other", 1024, 16, 4), &so, "another region");
  fails(resp("r", 1024, 16, 4), nullptr, "shm output nobody asked for");
  fails(resp("r", 2040, 16, 4), &so, "past the slot");
  fails(resp("r", 512, 16, 4), &so, "before the slot");
  fails(resp("r", 1024, 12, 4), &so, "size does not match the shape");
  fails(resp("r", 1024, -16, 4), &so, "negative size");
}
