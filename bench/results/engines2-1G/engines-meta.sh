declare -- model_orig="/root/.cache/flexpage/tinyllama-1.1b-q8_0-seed7.gguf"
declare -- model_bytes="1169807904"
declare -- tokens="8"
declare -- threads="1"
declare -- prompt="Once upon a time"
declare -A margin=([llama]="64" [preload]="96" [flexpage]="64" )
declare -A compute=([llama]="12.630" [flexpage]="21.83" )
declare -- compute_log="llama.cpp 10.466, flexpage run 21.83, llama.cpp 12.630, flexpage run 18.77, llama.cpp 9.235, flexpage run 18.50"
declare -A rates=([1G]="1072731311" )
declare -- rate_log="1G: 1.07 and 0.91 GB/s"
declare -a tier_name=([0]="1G")
declare -a tier_bps=([0]="1000000000")
declare -a tier_reps=([0]="3")
declare -a tier_budgets=([0]="100/75/50/35/25")
declare -a systems=([0]="llama-mmap" [1]="llama-mmap+mlock" [2]="llama-dio" [3]="llama-none" [4]="llama-mlock" [5]="llama-preload" [6]="flexpage-run")
declare -a budget_list=([0]="100" [1]="75" [2]="50" [3]="35" [4]="25")
declare -A plan_stream=([35]="725258076" [50]="549506253" [75]="258002125" [25]="843107533" [100]="1069548" )
declare -- started="2026-12-03 16:06 UTC"
declare -- elapsed="361"
declare -- cpu_model="AMD EPYC"
declare -- cores="2"
declare -- commit="5df6978"
declare -- llama_commit="de3ff81"
