// ktrace: a CUPTI injection library that writes every kernel's GPU start and end, graph nodes
// included (which --trace's marks cannot tell from the gaps between them), and copies; with
// KTRACE_API=1 the runtime API calls too. bench/ktrace/README.md builds and reads it.
//   CUDA_INJECTION64_PATH=libktrace.so KTRACE_OUT=/tmp/kt PROGRAM ...   -> /tmp/kt.<rank>.csv
// One line a record: K (kernel), M (copy), R (runtime call), then start and end (ns, CUPTI's
// clock), device, stream, graph node, graph, grid or bytes, block or copy kind, name.
#include <cupti.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace {
std::FILE* out = nullptr;
std::mutex mu;

void CUPTIAPI request(uint8_t** buffer, size_t* size, size_t* max_records) {
  *size = 4 << 20;
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, *size));
  if (!*buffer) *size = 0;  // CUPTI drops records rather than write into nothing
  *max_records = 0;
}

void CUPTIAPI done(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* rec = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (!out) {  // after finish(): the flush thread's late buffers
    std::free(buffer);
    return;
  }
  while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || rec->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
      auto* k = reinterpret_cast<CUpti_ActivityKernel10*>(rec);
      std::fprintf(out, "K,%llu,%llu,%u,%u,%llu,%u,%d,%d,%s\n", (unsigned long long)k->start,
                   (unsigned long long)k->end, k->deviceId, k->streamId, (unsigned long long)k->graphNodeId,
                   k->graphId, k->gridX * k->gridY * k->gridZ, k->blockX * k->blockY * k->blockZ, k->name);
    } else if (rec->kind == CUPTI_ACTIVITY_KIND_RUNTIME || rec->kind == CUPTI_ACTIVITY_KIND_DRIVER) {
      auto* a = reinterpret_cast<CUpti_ActivityAPI*>(rec);
      const char* name = nullptr;
      cuptiGetCallbackName(rec->kind == CUPTI_ACTIVITY_KIND_RUNTIME ? CUPTI_CB_DOMAIN_RUNTIME_API
                                                                     : CUPTI_CB_DOMAIN_DRIVER_API,
                           a->cbid, &name);
      std::fprintf(out, "%c,%llu,%llu,0,0,0,0,%u,%u,%s\n", rec->kind == CUPTI_ACTIVITY_KIND_RUNTIME ? 'R' : 'D',
                   (unsigned long long)a->start, (unsigned long long)a->end, a->threadId, a->correlationId,
                   name ? name : "?");
    } else if (rec->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
      auto* m = reinterpret_cast<CUpti_ActivityMemcpy6*>(rec);
      std::fprintf(out, "M,%llu,%llu,%u,%u,%llu,%u,%llu,%d,memcpy\n", (unsigned long long)m->start,
                   (unsigned long long)m->end, m->deviceId, m->streamId, (unsigned long long)m->graphNodeId,
                   m->graphId, (unsigned long long)m->bytes, (int)m->copyKind);
    }
  }
  std::free(buffer);
}

void finish() {
  cuptiActivityFlushAll(1);
  std::lock_guard<std::mutex> lock(mu);
  if (out) std::fclose(out), out = nullptr;
}
}  // namespace

extern "C" int InitializeInjection(void) {
  const char* prefix = std::getenv("KTRACE_OUT");
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  if (!rank) rank = std::getenv("PMI_RANK");
  if (!rank) rank = std::getenv("SLURM_PROCID");
  std::string path = std::string(prefix ? prefix : "/tmp/ktrace") + "." + (rank ? rank : "0") + ".csv";
  out = std::fopen(path.c_str(), "w");
  if (!out) return 0;
  cuptiActivityRegisterCallbacks(request, done);
  cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY);
  if (std::getenv("KTRACE_API")) cuptiActivityEnable(CUPTI_ACTIVITY_KIND_RUNTIME);
  cuptiActivityFlushPeriod(200);
  std::atexit(finish);
  return 1;
}
