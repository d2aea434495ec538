declare -- model_orig="/root/.cache/flexpage/tinyllama-1.1b-q8_0-seed7.gguf"
declare -- model_bytes="1169807904"
declare -- tokens="16"
declare -- threads="1"
declare -- prompt="Once upon a time"
declare -A margin=([llama]="64" [preload]="96" [flexpage]="64" )
declare -A compute=([llama]="12.398" [flexpage]="20.63" )
declare -- compute_log="llama.cpp 9.625, flexpage run 20.63, llama.cpp 12.398, flexpage run 19.10, llama.cpp 11.453, flexpage run 18.50"
declare -A rates=([full]="1317805868" )
declare -- rate_log="full: 0.97 and 1.32 GB/s"
declare -a tier_name=([0]="full")
declare -a tier_bps=([0]="0")
declare -a tier_reps=([0]="5")
declare -a tier_budgets=([0]="100")
declare -a systems=([0]="llama-mmap" [1]="llama-preload")
declare -a budget_list=([0]="100" [1]="75" [2]="50" [3]="35" [4]="25")
declare -A plan_stream=([35]="725258076" [50]="549506253" [75]="258002125" [25]="843107533" [100]="1069548" )
declare -- started="2026-12-03 15:49 UTC"
declare -- elapsed="62"
declare -- cpu_model="AMD EPYC"
declare -- cores="2"
declare -- commit="a394987"
declare -- llama_commit="de3ff81"
