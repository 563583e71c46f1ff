// Node binding to the machine's MPI library: start non-blocking collectives on typed arrays and
// test them for completion. It holds no protocol: MPI launches, connects and moves the data; the
// JS side (engine/comm/mpi.ts) decides when to poll. All calls come from the main JS thread.
#include <mpi.h>
#include <node_api.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

// One collective in flight: its MPI request and the arrays MPI reads or writes until it ends,
// pinned so the garbage collector cannot free them under MPI.
struct Op {
  uint32_t id;
  MPI_Request request;
  napi_ref pinned[2];
};

std::vector<Op> inflight;
uint32_t nextId = 1;
bool initialised = false;
bool finalised = false;

// Throws a JS error and returns false when `status` is not napi_ok.
bool ok(napi_env env, napi_status status, const char* what) {
  if (status == napi_ok) return true;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, nullptr, what);
  return false;
}

bool mpiOk(napi_env env, int code, const char* call) {
  if (code == MPI_SUCCESS) return true;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  std::string msg = std::string(call) + " failed: " + std::string(text, len);
  napi_throw_error(env, nullptr, msg.c_str());
  return false;
}

bool ready(napi_env env) {
  if (initialised && !finalised) return true;
  napi_throw_error(env, nullptr, finalised ? "MPI was finalised: the communicator is closed" : "MPI is not initialised: call init() first");
  return false;
}

napi_value number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

// Arguments of the current call; `n` is the count expected.
bool args(napi_env env, napi_callback_info info, size_t n, napi_value* out) {
  size_t got = n;
  if (!ok(env, napi_get_cb_info(env, info, &got, out, nullptr, nullptr), "napi_get_cb_info")) return false;
  if (got < n) {
    napi_throw_type_error(env, nullptr, "too few arguments");
    return false;
  }
  return true;
}

struct View {
  void* data;
  size_t bytes;
  napi_typedarray_type type;
};

bool typedArray(napi_env env, napi_value v, View* view) {
  bool is = false;
  napi_is_typedarray(env, v, &is);
  if (!is) {
    napi_throw_type_error(env, nullptr, "expected a typed array");
    return false;
  }
  size_t length = 0, offset = 0;
  napi_value buffer;
  if (!ok(env, napi_get_typedarray_info(env, v, &view->type, &length, &view->data, &buffer, &offset), "napi_get_typedarray_info")) return false;
  size_t elem = 1;
  switch (view->type) {
    case napi_int16_array: case napi_uint16_array: elem = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
    default: break;
  }
  view->bytes = length * elem;
  return true;
}

bool countFits(napi_env env, size_t count) {
  if (count <= static_cast<size_t>(INT32_MAX)) return true;
  napi_throw_range_error(env, nullptr, "array too large for one MPI call (more than 2^31-1 elements)");
  return false;
}

// Records a started request with the arrays it uses; returns its id to JS.
napi_value track(napi_env env, MPI_Request request, napi_value a, napi_value b) {
  Op op{nextId++, request, {nullptr, nullptr}};
  if (a) napi_create_reference(env, a, 1, &op.pinned[0]);
  if (b) napi_create_reference(env, b, 1, &op.pinned[1]);
  inflight.push_back(op);
  return number(env, op.id);
}

napi_value Init(napi_env env, napi_callback_info) {
  if (finalised) {
    napi_throw_error(env, nullptr, "MPI cannot be initialised again after MPI_Finalize");
    return nullptr;
  }
  if (!initialised) {
    int provided = 0;
    // Only the main JS thread calls MPI.
    if (!mpiOk(env, MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread")) return nullptr;
    initialised = true;
    // Errors come back as codes (turned into JS exceptions) instead of killing the process.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  int rank = 0, size = 0, localRank = 0, localSize = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm local;
  if (!mpiOk(env, MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local), "MPI_Comm_split_type")) return nullptr;
  MPI_Comm_rank(local, &localRank);
  MPI_Comm_size(local, &localSize);
  MPI_Comm_free(&local);
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(version, &len);

  napi_value out, lib;
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "rank", number(env, rank));
  napi_set_named_property(env, out, "size", number(env, size));
  napi_set_named_property(env, out, "localRank", number(env, localRank));
  napi_set_named_property(env, out, "localSize", number(env, localSize));
  napi_create_string_utf8(env, version, NAPI_AUTO_LENGTH, &lib);
  napi_set_named_property(env, out, "library", lib);
  return out;
}

// iallreduceSum(data: Float32Array): id. Sums in place.
napi_value IallreduceSum(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  View v;
  if (!ready(env) || !args(env, info, 1, argv) || !typedArray(env, argv[0], &v)) return nullptr;
  if (v.type != napi_float32_array) {
    napi_throw_type_error(env, nullptr, "iallreduceSum: expected a Float32Array");
    return nullptr;
  }
  if (!countFits(env, v.bytes / 4)) return nullptr;
  MPI_Request req;
  int rc = MPI_Iallreduce(MPI_IN_PLACE, v.data, static_cast<int>(v.bytes / 4), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
  if (!mpiOk(env, rc, "MPI_Iallreduce")) return nullptr;
  return track(env, req, argv[0], nullptr);
}

// iallgather(send, recv): id. Byte-wise; recv holds size * send's bytes.
napi_value Iallgather(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  View s, r;
  if (!ready(env) || !args(env, info, 2, argv) || !typedArray(env, argv[0], &s) || !typedArray(env, argv[1], &r)) return nullptr;
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (r.bytes != s.bytes * static_cast<size_t>(size)) {
    napi_throw_range_error(env, nullptr, "iallgather: receive array must hold size x the send array's bytes");
    return nullptr;
  }
  if (!countFits(env, s.bytes)) return nullptr;
  int n = static_cast<int>(s.bytes);
  MPI_Request req;
  if (!mpiOk(env, MPI_Iallgather(s.data, n, MPI_BYTE, r.data, n, MPI_BYTE, MPI_COMM_WORLD, &req), "MPI_Iallgather")) return nullptr;
  return track(env, req, argv[0], argv[1]);
}

// ibcast(data, root): id. Byte-wise, in place.
napi_value Ibcast(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  View v;
  int32_t root = 0;
  if (!ready(env) || !args(env, info, 2, argv) || !typedArray(env, argv[0], &v)) return nullptr;
  if (!ok(env, napi_get_value_int32(env, argv[1], &root), "ibcast: root must be a number")) return nullptr;
  if (!countFits(env, v.bytes)) return nullptr;
  MPI_Request req;
  if (!mpiOk(env, MPI_Ibcast(v.data, static_cast<int>(v.bytes), MPI_BYTE, root, MPI_COMM_WORLD, &req), "MPI_Ibcast")) return nullptr;
  return track(env, req, argv[0], nullptr);
}

napi_value Ibarrier(napi_env env, napi_callback_info) {
  if (!ready(env)) return nullptr;
  MPI_Request req;
  if (!mpiOk(env, MPI_Ibarrier(MPI_COMM_WORLD, &req), "MPI_Ibarrier")) return nullptr;
  return track(env, req, nullptr, nullptr);
}

// testsome(): ids of the requests that completed since the last call (one MPI_Testsome, which
// also drives MPI's progress for those still running). Their arrays are unpinned.
napi_value Testsome(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_array(env, &out);
  if (inflight.empty()) return out;
  if (!ready(env)) return nullptr;
  int n = static_cast<int>(inflight.size());
  std::vector<MPI_Request> reqs(n);
  for (int i = 0; i < n; i++) reqs[i] = inflight[i].request;
  std::vector<int> done(n);
  int count = 0;
  int rc = MPI_Testsome(n, reqs.data(), &count, done.data(), MPI_STATUSES_IGNORE);
  if (!mpiOk(env, rc, "MPI_Testsome")) return nullptr;
  if (count == MPI_UNDEFINED) count = 0;
  std::vector<bool> finished(n, false);
  for (int k = 0; k < count; k++) {
    Op& op = inflight[done[k]];
    finished[done[k]] = true;
    napi_set_element(env, out, k, number(env, op.id));
    for (napi_ref& ref : op.pinned)
      if (ref) napi_delete_reference(env, ref);
  }
  std::vector<Op> still;
  for (int i = 0; i < n; i++)
    if (!finished[i]) {
      inflight[i].request = reqs[i];
      still.push_back(inflight[i]);
    }
  inflight.swap(still);
  return out;
}

// abort(code): ends every process of the job. Never returns.
napi_value Abort(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t code = 1;
  if (args(env, info, 1, argv)) napi_get_value_int32(env, argv[0], &code);
  fflush(stdout);
  fflush(stderr);
  if (initialised && !finalised) MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}

napi_value Finalize(napi_env env, napi_callback_info) {
  if (!inflight.empty()) {
    napi_throw_error(env, nullptr, "MPI_Finalize with collectives still in flight: await them first");
    return nullptr;
  }
  if (initialised && !finalised) {
    finalised = true;
    if (!mpiOk(env, MPI_Finalize(), "MPI_Finalize")) return nullptr;
  }
  return nullptr;
}

}  // namespace

NAPI_MODULE_INIT() {
  const napi_property_descriptor fns[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"iallreduceSum", nullptr, IallreduceSum, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"iallgather", nullptr, Iallgather, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ibcast", nullptr, Ibcast, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ibarrier", nullptr, Ibarrier, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"testsome", nullptr, Testsome, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"abort", nullptr, Abort, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"finalize", nullptr, Finalize, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]), fns);
  return exports;
}
