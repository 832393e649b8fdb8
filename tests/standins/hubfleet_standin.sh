# shellcheck shell=sh
# The stand-ins' fast paths, in POSIX sh (sourced by the launchers systemctl, k3s, sysctl,
# nproc, timedatectl, curl, which are both sh and Python): the hot read-only queries a no-op rerun of
# hubfleet makes are answered without starting Python, as cheaply as the real binaries answer
# them. hf_main TOOL ARG... answers, records the call in calls.log exactly as
# hubfleet_standin.record() would, and exits; it returns (the launcher then runs its Python
# body, always correct) for any other arguments, when an answer file is missing, or when the
# call's record needs JSON escaping (argv words, cwd, SUDO_USER or the value of a K3S_* or
# INSTALL_K3S_* variable outside [A-Za-z0-9._/:=+-]; secret ones are recorded as "<hidden>").
#
# Answer files (one value a line), kept by whoever changes what they derive from:
# - /run/hubfleet-host/answers/{nproc,systemd_state,time_synced}: the host's lab options
#   (written by the lab, tests/harness_lab.py _set_host_option);
# - /var/lib/hubfleet-standin/answers/systemd/UNIT (+ systemd.ok): each unit's ActiveState in
#   systemd/units.json (the systemctl stand-in, whenever it saves that file);
# - /var/lib/hubfleet-standin/answers/sysctl/KEY (+ sysctl.ok): the values written with the
#   sysctl stand-in (sysctl.json); other keys are read from /proc/sys (with cat) as the
#   stand-in does;
# - /var/lib/hubfleet-standin/answers/ntp: set-ntp's setting (timedate.json);
# - /var/lib/hubfleet-standin/answers/k3s-version/VERSION: what `k3s --version` prints for
#   that version (written by the k3s stand-in the first time it answers it).
# HUBFLEET_STANDIN_SLOW=1 in the environment turns the fast paths off.

HF_STATE=/var/lib/hubfleet-standin
HF_ANSWERS=$HF_STATE/answers
HF_HOST_ANSWERS=/run/hubfleet-host/answers
hf_nl='
'

# hf_safe WORD...: every word can be written in JSON (and a path) as it is
hf_safe() {
    for hf_w; do
        case $hf_w in
        *[!A-Za-z0-9._/:=+-]*) return 1 ;;
        esac
    done
    return 0
}

# hf_line FILE: its single non-empty line in hf_v
hf_line() {
    [ -f "$1" ] || return 1
    {
        IFS= read -r hf_v && [ -n "$hf_v" ] && ! { IFS= read -r hf_w || [ -n "$hf_w" ]; }
    } 2>/dev/null <"$1"
}

# hf_lines FILE: its lines (each ending in a newline) in hf_v
hf_lines() {
    [ -f "$1" ] || return 1
    hf_v= hf_w=
    {
        while IFS= read -r hf_w; do
            hf_v=$hf_v$hf_w$hf_nl
        done
    } 2>/dev/null <"$1" || return 1
    [ -n "$hf_v" ] && [ -z "$hf_w" ]
}

# hf_env_json EXPORTS: the INSTALL_K3S_* and K3S_* variables of `export -p` output (dash's:
# export NAME='value', sorted by name) as the members of a JSON object in hf_env, the secret
# ones as "<hidden>" (hubfleet_standin.SECRET_ENV); fails (the Python records the call) for a
# value that is not one safe word, or K3S_ anywhere else
hf_env_json() {
    hf_env= hf_rest=$1$hf_nl
    while [ -n "$hf_rest" ]; do
        hf_l=${hf_rest%%"$hf_nl"*}
        hf_rest=${hf_rest#*"$hf_nl"}
        case $hf_l in
        *K3S_*) ;;
        *) continue ;;
        esac
        case $hf_l in
        "export INSTALL_K3S_"*=\'*\' | "export K3S_"*=\'*\') ;;
        *) return 1 ;;
        esac
        hf_n=${hf_l#export }
        hf_n=${hf_n%%=*}
        hf_v=${hf_l#*=\'}
        hf_v=${hf_v%\'}
        case $hf_n in
        K3S_TOKEN | K3S_AGENT_TOKEN | K3S_CLUSTER_SECRET | K3S_DATASTORE_ENDPOINT)
            hf_safe "$hf_n" || return 1
            hf_v='<hidden>'
            ;;
        *) hf_safe "$hf_n" "$hf_v" || return 1 ;;
        esac
        hf_env="$hf_env${hf_env:+, }\"$hf_n\": \"$hf_v\""
    done
}

# hf_record TOOL ARG...: append the call to calls.log as hubfleet_standin.record() does
hf_record() {
    hf_safe "$@" || return 1
    hf_tool=$1
    shift
    if [ -n "${SUDO_USER+set}" ]; then
        hf_safe "$SUDO_USER" || return 1
        hf_sudo="\"$SUDO_USER\""
    else
        hf_sudo=null
    fi
    hf_uid=
    while read -r hf_k hf_r hf_e hf_w; do
        if [ "$hf_k" = Uid: ]; then
            hf_uid=$hf_e
            break
        fi
    done </proc/$$/status
    case $hf_uid in
    '' | *[!0-9]*) return 1 ;;
    esac
    # one fork: the cwd (as os.getcwd()), the environment, the time
    hf_all=$(
        exec 2>/dev/null
        pwd -P && export -p && exec date +%s.%3N
    ) || return 1
    hf_env_json "$hf_all" || return 1
    hf_cwd=${hf_all%%"$hf_nl"*}
    hf_time=${hf_all##*"$hf_nl"}
    hf_safe "$hf_cwd" && [ -n "$hf_cwd" ] && [ "$hf_cwd" -ef . ] || return 1
    case $hf_time in
    *.*.* | *[!0-9.]* | .* | *.) return 1 ;;
    esac
    hf_ms=${hf_time#*.}
    while :; do
        case $hf_ms in
        *0) hf_ms=${hf_ms%0} ;;
        *) break ;;
        esac
    done
    hf_time=${hf_time%.*}.${hf_ms:-0}
    hf_args=
    for hf_w; do
        hf_args="$hf_args${hf_args:+, }\"$hf_w\""
    done
    {
        printf '{"argv": [%s], "cwd": "%s", "env": {%s}, "pid": %s, "sudo_user": %s, "time": %s, "tool": "%s", "uid": %s}\n' \
            "$hf_args" "$hf_cwd" "$hf_env" "$$" "$hf_sudo" "$hf_time" "$hf_tool" "$hf_uid" >>"$HF_STATE/calls.log"
    } 2>/dev/null
}

# systemctl is-system-running | systemctl is-active [-q|--quiet] UNIT...
hf_systemctl() {
    if [ $# = 1 ] && [ "$1" = is-system-running ]; then
        hf_line "$HF_HOST_ANSWERS/systemd_state" || return 1
        hf_out=$hf_v$hf_nl
        if [ "$hf_v" = running ]; then hf_code=0; else hf_code=1; fi
        return 0
    fi
    [ "${1-}" = is-active ] || return 1
    shift
    if [ -f "$HF_ANSWERS/systemd.ok" ]; then
        hf_dir=$HF_ANSWERS/systemd
    elif [ -e "$HF_STATE/systemd/units.json" ]; then
        return 1
    else
        hf_dir=
    fi
    hf_quiet= hf_out= hf_code=0 hf_any=
    for hf_a; do
        case $hf_a in
        -q | --quiet)
            hf_quiet=1
            continue
            ;;
        '' | -* | .* | *[!A-Za-z0-9_.@:-]*) return 1 ;;
        *.*) hf_u=$hf_a ;;
        *) hf_u=$hf_a.service ;;
        esac
        hf_any=1
        if [ -n "$hf_dir" ] && [ -e "$hf_dir/$hf_u" ]; then
            hf_line "$hf_dir/$hf_u" || return 1
        else
            hf_v=inactive
        fi
        [ "$hf_v" = active ] || hf_code=3
        hf_out=$hf_out$hf_v$hf_nl
    done
    [ -n "$hf_any" ] || return 1
    [ -z "$hf_quiet" ] || hf_out=
}

# sysctl [-n] KEY...
hf_sysctl() {
    if [ -f "$HF_ANSWERS/sysctl.ok" ]; then
        hf_dir=$HF_ANSWERS/sysctl
    elif [ -e "$HF_STATE/sysctl.json" ]; then
        return 1
    else
        hf_dir=
    fi
    hf_values=
    for hf_a; do
        [ "$hf_a" != -n ] || hf_values=1
    done
    hf_out= hf_code=0 hf_any=
    for hf_a; do
        case $hf_a in
        -n) continue ;;
        '' | [!A-Za-z0-9_]* | *[!A-Za-z0-9_.-]* | *..* | *.) return 1 ;;
        esac
        hf_any=1
        if [ -n "$hf_dir" ] && [ -e "$hf_dir/$hf_a" ]; then
            hf_line "$hf_dir/$hf_a" || return 1
        else
            hf_p= hf_k=$hf_a
            while :; do
                case $hf_k in
                *.*)
                    hf_p=$hf_p${hf_k%%.*}/
                    hf_k=${hf_k#*.}
                    ;;
                *) break ;;
                esac
            done
            # cat, not read: a /proc/sys file answers only a read from its start (and the
            # stand-in reads the whole file, without its trailing newlines)
            [ -f "/proc/sys/$hf_p$hf_k" ] || return 1
            hf_v=$(exec cat -- "/proc/sys/$hf_p$hf_k" 2>/dev/null) || return 1
            case $hf_v in
            '' | *"$hf_nl"*) return 1 ;;
            esac
        fi
        if [ -n "$hf_values" ]; then
            hf_out=$hf_out$hf_v$hf_nl
        else
            hf_out="$hf_out$hf_a = $hf_v$hf_nl"
        fi
    done
    [ -n "$hf_any" ]
}

# timedatectl show -p NTPSynchronized [--value]
hf_timedatectl() {
    [ "${1-}" = show ] && [ "${2-}" = -p ] && [ "${3-}" = NTPSynchronized ] || return 1
    if [ $# = 3 ]; then
        hf_out=NTPSynchronized=
    elif [ $# = 4 ] && [ "$4" = --value ]; then
        hf_out=
    else
        return 1
    fi
    if [ -e "$HF_STATE/timedate.json" ]; then
        hf_line "$HF_ANSWERS/ntp" || return 1
    else
        hf_v=yes
    fi
    if [ "$hf_v" = yes ]; then
        hf_line "$HF_HOST_ANSWERS/time_synced" || return 1
    fi
    hf_out=$hf_out$hf_v$hf_nl
    hf_code=0
}

# nproc [--all]
hf_nproc() {
    [ $# = 0 ] || { [ $# = 1 ] && [ "$1" = --all ]; } || return 1
    hf_line "$HF_HOST_ANSWERS/nproc" || return 1
    hf_out=$hf_v$hf_nl
    hf_code=0
}

# k3s --version | -v | version (the launcher sets STANDIN_VERSION)
hf_k3s() {
    [ $# = 1 ] || return 1
    case $1 in
    --version | -v | version) ;;
    *) return 1 ;;
    esac
    [ -n "${STANDIN_VERSION-}" ] && hf_safe "$STANDIN_VERSION" || return 1
    hf_lines "$HF_ANSWERS/k3s-version/$STANDIN_VERSION" || return 1
    hf_out=$hf_v
    hf_code=0
}

# hf_main TOOL ARG...: answer, record and exit; return when Python must answer
# curl -sfL https://get.k3s.io: the install script stand-in, as the Python curl serves it
hf_curl() {
    [ $# = 2 ] && [ "$1" = -sfL ] || return 1
    case $2 in
    https://get.k3s.io | https://get.k3s.io/) ;;
    *) return 1 ;;
    esac
    [ -f /run/hubfleet-standins/get.k3s.io ] || return 1
    hf_file=/run/hubfleet-standins/get.k3s.io hf_code=0
}

hf_main() {
    [ -z "${HUBFLEET_STANDIN_SLOW-}" ] || return 0
    hf_name=$1
    shift
    case $hf_name in
    systemctl | sysctl | timedatectl | nproc | k3s | curl) ;;
    *) return 0 ;;
    esac
    hf_file= hf_out=
    "hf_$hf_name" "$@" || return 0
    hf_record "$hf_name" "$@" || return 0
    if [ -n "$hf_file" ]; then
        exec cat -- "$hf_file"
    fi
    printf '%s' "$hf_out"
    exit "$hf_code"
}
