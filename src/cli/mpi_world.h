// `awq quantize --mpi` under mpirun: every rank searches its shard of the blocks, then rank 0
// merges them (awq/shard.h). The awq binary links Open MPI only when it was found at configure
// time (AWQ_HAVE_MPI); the libraries never do. Only collectives on a few bytes are used: the data
// travels through the shared file system the shards are written to.
#pragma once

namespace awq::cli {

class MpiWorld {
 public:
  MpiWorld();   // MPI_Init, or an awq::Error when this build has no MPI
  ~MpiWorld();  // MPI_Finalize
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }
  // True on every rank when every rank passed true (a collective: all ranks must call it).
  bool all(bool mine) const;

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace awq::cli
