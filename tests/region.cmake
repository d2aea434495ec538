# The chunk protocol, against the table it documents (pager/src/chunk.h).
flexpage_test(test_chunk test_chunk.c)
target_link_libraries(test_chunk PRIVATE flexpage_pager)
target_include_directories(test_chunk PRIVATE ${CMAKE_SOURCE_DIR}/pager/src)
# The pager's own suites: bytes and budget, failures, lifecycle and settings,
# install paths, the trace; a file each.
flexpage_test(test_region test_region.c test_region_failure.c test_region_lifecycle.c
  test_region_install.c test_region_trace.c region_util.c)
target_link_libraries(test_region PRIVATE flexpage_pager)
flexpage_test(test_sim test_sim.c region_util.c)
target_link_libraries(test_sim PRIVATE flexpage_pager)
flexpage_test(test_crc test_crc.c)
target_link_libraries(test_crc PRIVATE flexpage_pager)
flexpage_test(test_plan test_plan.c region_util.c)
target_link_libraries(test_plan PRIVATE flexpage_pager)
flexpage_test(test_region_unmap test_region_unmap.c region_util.c)
target_link_libraries(test_region_unmap PRIVATE flexpage_pager)
# Storage that fails or stalls, through the I/O seam; memory refused.
flexpage_test(test_storage_faults test_storage_faults.c region_util.c)
target_link_libraries(test_storage_faults PRIVATE flexpage_pager)
# bench/soak for a minute: every byte right, the budget held (CI's soak).
flexpage_test(test_soak test_soak.c)
target_link_libraries(test_soak PRIVATE flexpage_testutil)
target_compile_definitions(test_soak PRIVATE FLEXPAGE_SOAK="$<TARGET_FILE:soak>")
add_dependencies(test_soak soak)
