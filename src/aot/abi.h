/* The C ABI of a library built from `quiver compile` output, as the aot backend loads it. The shared
   library (built with QUIVER_AOT_LOADABLE) exports quiver_aot_entry(); every library also exports the
   same functions under its own name (NAME_info, NAME_workspace_bytes, NAME_output_dims, NAME_run,
   NAME_load_weights, NAME_run_dims).
   dims: the symbolic dims' values in the order "dims" lists them in info(). Functions return 0 on
   success, else write a message into err (when err_len > 0) and return non-zero. */
#ifndef QUIVER_AOT_ABI_DEFINED
#define QUIVER_AOT_ABI_DEFINED
#include <stddef.h>
#include <stdint.h>
/* 2: load_weights added (version 1 libraries have their weights built in and no such member).
   3: run_dims added (outputs whose dims depend on the data). */
#define QUIVER_AOT_ABI_VERSION 3
/* The most dims a tensor has: output_dims' out_dims holds this many, run_dims' this many per output. */
#define QUIVER_AOT_MAX_RANK 8
typedef struct quiver_aot_api {
  int abi_version;
  /* JSON: name, source_sha256, quiver_version, format, target, dims [{name, max}], inputs and outputs
     [{name, c_name, dtype, shape: [int | dim name | "?"]}]; an output whose dims depend on the
     tensor data (NonZero's count) also has data_dependent_axes: [axis, ...]. */
  const char* (*info)(void);
  int (*workspace_bytes)(const int64_t* dims, size_t* bytes, char* err, size_t err_len);
  int (*output_dims)(const int64_t* dims, int output, int64_t* out_dims, int* rank, char* err, size_t err_len);
  int (*run)(const int64_t* dims, const void* const* inputs, void* const* outputs, void* workspace,
             size_t workspace_bytes, char* err, size_t err_len);
  /* Libraries compiled with `--weights file` ("weights": "file" in info): maps the NAME.weights file at
     `path` (NULL or "": NAME.weights next to the library) once, checking it against what the library
     was compiled with; run() does so on first use otherwise. The weights stay loaded, unchanged, while
     the library is; loading another file then is an error. Built-in weights: does nothing. */
  int (*load_weights)(const char* path, char* err, size_t err_len);
  /* run, and each output's dims as written: output k's rank in out_ranks[k], its dims in
     out_dims[k * QUIVER_AOT_MAX_RANK ...]. Outputs with data_dependent_axes are sized by output_dims
     (their bound, as for run) and hold the data row-major in these dims, at the start of the buffer;
     run fails when such dims differ from output_dims. */
  int (*run_dims)(const int64_t* dims, const void* const* inputs, void* const* outputs, int* out_ranks,
                  int64_t* out_dims, void* workspace, size_t workspace_bytes, char* err, size_t err_len);
} quiver_aot_api;
#endif
