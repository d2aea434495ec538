# bench/fault_latency: cold fault latency and throughput of a flexpage region
# next to the machine's bounds (see bench/README.md).
add_executable(fault_latency
  ${CMAKE_CURRENT_LIST_DIR}/fault_latency.c
  ${CMAKE_CURRENT_LIST_DIR}/fl_util.c
  ${CMAKE_CURRENT_LIST_DIR}/fl_base.c)
target_link_libraries(fault_latency PRIVATE flexpage_pager PkgConfig::ZSTD Threads::Threads m)
target_compile_definitions(fault_latency PRIVATE
  FL_DEFAULT_OUT="${CMAKE_CURRENT_LIST_DIR}/results")

# What the trace and the simulator cost.
add_executable(paging_lab paging_lab.c)
target_link_libraries(paging_lab PRIVATE flexpage_pager)

# bench/soak: ten million faults with every byte checked and the budget
# held under live budget and policy changes (bench/README.md).
add_executable(soak ${CMAKE_CURRENT_LIST_DIR}/soak.c ${CMAKE_CURRENT_LIST_DIR}/fl_util.c)
target_link_libraries(soak PRIVATE flexpage_pager PkgConfig::ZSTD Threads::Threads m)
target_compile_definitions(soak PRIVATE FL_DEFAULT_OUT="${CMAKE_CURRENT_LIST_DIR}/results")
# One core's decode rate of images' stored chunks (bench/compress).
add_executable(decode_rate decode_rate.c)
target_link_libraries(decode_rate PRIVATE flexpage_pager)
