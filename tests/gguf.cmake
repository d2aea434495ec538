# Suites for GGUF: the reader and writer (test_gguf), and GGUF files paged
# directly, packed, and through the flexpage command (test_gguf_paging).
add_library(flexpage_gguf_testutil STATIC ${CMAKE_CURRENT_SOURCE_DIR}/gguf_util.c)
target_include_directories(flexpage_gguf_testutil PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})

flexpage_test(test_gguf test_gguf.c)
target_link_libraries(test_gguf PRIVATE flexpage_pager flexpage_testutil flexpage_gguf_testutil)

flexpage_test(test_gguf_paging test_gguf_paging.c)
target_link_libraries(test_gguf_paging PRIVATE flexpage_pager flexpage_testutil flexpage_gguf_testutil)
add_dependencies(test_gguf_paging flexpage)
