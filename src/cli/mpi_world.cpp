#include "cli/mpi_world.h"

#include "base/error.h"

#ifdef AWQ_HAVE_MPI
#include <mpi.h>
#endif

namespace awq::cli {

#ifdef AWQ_HAVE_MPI
MpiWorld::MpiWorld() {
  MPI_Init(nullptr, nullptr);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

MpiWorld::~MpiWorld() {
  MPI_Finalize();
}

bool MpiWorld::all(bool mine) const {
  int in = mine ? 1 : 0, out = 0;
  MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return out == 1;
}
#else
MpiWorld::MpiWorld() {
  fail(
      "--mpi: this awq was built without Open MPI (apt-get install libopenmpi-dev openmpi-bin, "
      "then configure and build again); --shard K/N and awq merge do the same by hand");
}
MpiWorld::~MpiWorld() = default;
bool MpiWorld::all(bool mine) const {
  return mine;
}
#endif

}  // namespace awq::cli
