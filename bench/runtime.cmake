# bench/decode: tokens/s of fully resident models next to the machine's
# read bandwidth and llama-bench (docs/runtime.md, "Performance").
add_executable(decode ${CMAKE_CURRENT_LIST_DIR}/decode.c)
target_link_libraries(decode PRIVATE flexmodel Threads::Threads m)
target_compile_definitions(decode PRIVATE
  FLEXPAGE_BENCH_RESULTS="${CMAKE_CURRENT_LIST_DIR}/results")

# bench/decode_contention: compute throughput of the kernel pool beside
# threads decoding zstd, flat out and paced (docs/compression.md).
add_executable(decode_contention ${CMAKE_CURRENT_LIST_DIR}/decode_contention.c)
target_link_libraries(decode_contention PRIVATE flexpage_kernels PkgConfig::ZSTD Threads::Threads m)
target_compile_definitions(decode_contention PRIVATE
  FLEXPAGE_BENCH_RESULTS="${CMAKE_CURRENT_LIST_DIR}/results")
