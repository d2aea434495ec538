# bench/decode: tokens/s of fully resident models next to the machine's
# read bandwidth and llama-bench (docs/runtime.md, "Performance").
add_executable(decode ${CMAKE_CURRENT_LIST_DIR}/decode.c)
target_link_libraries(decode PRIVATE flexmodel Threads::Threads m)
target_compile_definitions(decode PRIVATE
  FLEXPAGE_BENCH_RESULTS="${CMAKE_CURRENT_LIST_DIR}/results")
