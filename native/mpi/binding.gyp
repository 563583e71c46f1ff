# Built by scripts/build-mpi.mjs; flags.mjs asks the installed MPI for its compile and link flags.
# The C API only: the deprecated C++ bindings would need libmpi_cxx at load time.
{
  "targets": [
    {
      "target_name": "densecl_mpi",
      "sources": ["addon.cc"],
      "cflags_cc": ["-std=c++17", "<!@(node flags.mjs compile)"],
      "libraries": ["<!@(node flags.mjs link)"],
      "defines": ["NAPI_VERSION=8", "OMPI_SKIP_MPICXX=1", "MPICH_SKIP_MPICXX=1"]
    }
  ]
}
