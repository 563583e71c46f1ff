/* Baseline for bench/comm.ts: MPI's own blocking MPI_Allreduce (float32 sum, in place) from C,
 * with no Node and no polling in between. Usage: mpirun -np P allreduce_blocking REPS COUNT...
 * Rank 0 prints "COUNT MEDIAN_MS" per count (median of REPS after one warm-up). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int reps = argc > 1 ? atoi(argv[1]) : 5;
  double* times = malloc(sizeof(double) * (reps + 1));
  for (int c = 2; c < argc; c++) {
    int n = atoi(argv[c]);
    float* data = malloc(sizeof(float) * (size_t)n);
    for (int r = 0; r <= reps; r++) {
      for (int i = 0; i < n; i++) data[i] = 1.0f;
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, data, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      times[r] = (MPI_Wtime() - t0) * 1e3;
    }
    qsort(times + 1, reps, sizeof(double), cmp);
    if (rank == 0) printf("%d %.3f\n", n, times[1 + reps / 2]);
    free(data);
  }
  free(times);
  MPI_Finalize();
  return 0;
}
