declare -- model_orig="/root/.cache/flexpage/llama2-7b-q4_0-seed7.gguf"
declare -- model_bytes="3792015136"
declare -- tokens="5"
declare -- threads="1"
declare -- no_repack_all="1"
declare -- prompt="Once upon a time"
declare -A margin=([llama]="192" [preload]="224" [flexpage]="80" )
declare -A compute=([llama]="1.985" [flexpage]="3.85" )
declare -- compute_log="llama.cpp 1.844, flexpage run 3.59, llama.cpp 1.985, flexpage run 3.85, llama.cpp 1.919, flexpage run 3.74"
declare -A rates=([1G]="1053415126" )
declare -- rate_log="1G: 1.05 and 0.80 GB/s"
declare -a tier_name=([0]="1G")
declare -a tier_bps=([0]="1000000000")
declare -a tier_reps=([0]="3")
declare -a tier_budgets=([0]="100/50/25")
declare -a systems=([0]="llama-mmap" [1]="llama-preload" [2]="flexpage-run")
declare -a budget_list=([0]="100" [1]="50" [2]="25")
declare -A plan_stream=([50]="1857573356" [25]="2802466161" [100]="1014088" )
declare -- started="2026-12-03 18:10 UTC"
declare -- elapsed="498"
declare -- cpu_model="AMD EPYC"
declare -- cores="2"
declare -- commit="629afcd"
declare -- llama_commit="de3ff81"
