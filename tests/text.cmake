# Text in and out: the tokenizer against llama2.c's encoding, perplexity
# against the float64 reference, and `flexpage run` / `flexpage
# perplexity` as programs.  Included by tests/CMakeLists.txt after
# runtime.cmake, which defines flexpage_rt_testutil.
flexpage_test(test_tokenizer test_tokenizer.c ref_tokenizer.c)
target_link_libraries(test_tokenizer PRIVATE flexpage_rt_testutil)
add_dependencies(test_tokenizer flexpage)

flexpage_test(test_perplexity test_perplexity.c ref_forward.c ref_tokenizer.c)
target_link_libraries(test_perplexity PRIVATE flexpage_rt_testutil)
add_dependencies(test_perplexity flexpage)
