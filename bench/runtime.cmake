# bench/decode: tokens/s of a fully resident model next to the machine's
# read bandwidth (docs/runtime.md, "Performance").
add_executable(decode
  ${CMAKE_CURRENT_LIST_DIR}/decode.c
  ${CMAKE_SOURCE_DIR}/tools/flexpage/model_import.c
  ${CMAKE_SOURCE_DIR}/tools/flexpage/model_load.c
  ${CMAKE_SOURCE_DIR}/tools/flexpage/synth_gen.c)
target_include_directories(decode PRIVATE ${CMAKE_SOURCE_DIR}/tools/flexpage)
target_link_libraries(decode PRIVATE flexpage_pager flexpage_runtime flexpage_kernels
                      Threads::Threads m)
target_compile_definitions(decode PRIVATE
  FLEXPAGE_BENCH_RESULTS="${CMAKE_CURRENT_LIST_DIR}/results")
