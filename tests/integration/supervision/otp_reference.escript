#!/usr/bin/env escript
%% -*- erlang -*-
%%! +S 1:1 +sbwt none +A 1
%%
%% The reference side of test_otp_differential.py: runs supervision scenarios
%% in Erlang/OTP's own supervisor and prints what an observer sees after each
%% step. Usage: escript otp_reference.escript SCENARIO_FILE
%%
%% SCENARIO_FILE holds Erlang terms, one per scenario:
%%   {scenario, Id, Tree, Steps}.
%%   Tree  = {sup, Path, Restart, Strategy, MaxRestarts, [Tree | {worker, Path, Restart}]}
%%   Steps = [{Path, crash | normal}]
%% (the root's Restart is ignored). For every step it prints one line:
%%   step Id Index Path=Alive/Starts Path=Alive/Starts ...
%% for every node of the tree in depth-first order, Alive 1 or 0, Starts the
%% number of times that node's init ran. Step index 0 is the state after start.
%% The last line is "done" and the OTP release.
-module(otp_reference).
-mode(compile).
-export([main/1, init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(PERIOD_S, 60).
-define(STARTS, otp_reference_starts).

main([File]) ->
    logger:set_primary_config(level, none),  % crash reports are the test's input
    process_flag(trap_exit, true),
    ets:new(?STARTS, [named_table, public, set]),
    {ok, Scenarios} = file:consult(File),
    lists:foreach(fun run/1, Scenarios),
    io:format("done ~s~n", [erlang:system_info(otp_release)]),
    halt(0);
main(_) ->
    io:format(standard_error, "usage: otp_reference.escript SCENARIO_FILE~n", []),
    halt(64).

run({scenario, Id, Tree, Steps}) ->
    ets:delete_all_objects(?STARTS),
    {sup, RootPath, _, _, _, _} = Tree,
    {ok, Root} = supervisor:start_link({local, name(RootPath)}, ?MODULE, {sup, Tree}),
    report(Id, 0, Tree),
    lists:foldl(fun(Step, Index) -> step(Step, Tree), report(Id, Index, Tree), Index + 1 end,
                1, Steps),
    stop_root(Root).

stop_root(Root) ->
    case is_process_alive(Root) of
        true ->
            unlink(Root),
            Ref = monitor(process, Root),
            exit(Root, shutdown),
            receive {'DOWN', Ref, process, Root, _} -> ok end;
        false -> ok
    end,
    receive {'EXIT', Root, _} -> ok after 0 -> ok end.

%% One event: the worker at Path crashes or exits normally, if it is alive.
%% Then wait until every supervisor up the chain has handled the exit it got.
step({Path, Kind}, Tree) ->
    %% The supervisors' pids are taken before the event: one may be gone by the
    %% time the worker's 'DOWN' arrives.
    Chain = [whereis(name(P)) || P <- ancestors(Path, Tree)],
    case whereis(name(Path)) of
        undefined -> ok;
        Pid ->
            Ref = monitor(process, Pid),
            gen_server:cast(Pid, Kind),
            receive {'DOWN', Ref, process, Pid, _} -> ok end,
            settle(Pid, id(Path), Chain)
    end.

%% The exit of Pid (child Id) is handled once its supervisor's child list no
%% longer shows Pid: restarted, kept down, removed. A supervisor that died
%% meanwhile gave up: then the same question goes one level up.
settle(_Pid, _Id, []) -> ok;
settle(_Pid, _Id, [undefined | _]) -> ok;
settle(Pid, Id, [Sup | Above]) ->
    case catch supervisor:which_children(Sup) of
        {'EXIT', _} ->
            Ref = monitor(process, Sup),
            receive {'DOWN', Ref, process, Sup, _} -> ok end,
            settle(Sup, sup_id(Sup), Above);
        Children ->
            case lists:keyfind(Id, 1, Children) of
                {Id, Pid, _, _} -> timer:sleep(1), settle(Pid, Id, [Sup | Above]);
                _ -> ok
            end
    end.

sup_id(Sup) ->
    {registered_name, Name} = process_info_or_gone(Sup),
    id(atom_to_list(Name)).

process_info_or_gone(Pid) ->
    %% Called only on a dead supervisor: its name is gone, so it is kept on the side.
    case ets:lookup(?STARTS, {pid, Pid}) of
        [{_, Name}] -> {registered_name, Name};
        [] -> erlang:error({unknown_supervisor, Pid})
    end.

report(Id, Index, Tree) ->
    Nodes = [io_lib:format(" ~s=~w/~w", [P, alive(P), starts(P)]) || P <- paths(Tree)],
    io:format("step ~w ~w~s~n", [Id, Index, Nodes]).

alive(Path) -> case whereis(name(Path)) of undefined -> 0; _ -> 1 end.

starts(Path) -> case ets:lookup(?STARTS, Path) of [{_, N}] -> N; [] -> 0 end.

paths({worker, Path, _}) -> [Path];
paths({sup, Path, _, _, _, Children}) -> [Path | lists:append([paths(C) || C <- Children])].

ancestors(Path, Tree) ->
    {ok, Chain} = find(Path, Tree, []),
    Chain.

find(Path, {worker, Path, _}, Above) -> {ok, Above};
find(_Path, {worker, _, _}, _Above) -> error;
find(Path, {sup, Path, _, _, _, _}, Above) -> {ok, Above};
find(Path, {sup, Sup, _, _, _, Children}, Above) ->
    lists:foldl(fun(_, {ok, _} = Found) -> Found;
                   (Child, error) -> find(Path, Child, [Sup | Above])
                end, error, Children).

name(Path) -> list_to_atom(Path).

id(Path) -> lists:last(string:split(Path, "/", all)).

counted(Path) -> ets:update_counter(?STARTS, Path, 1, {Path, 0}).

%% -- callbacks: supervisor (init/1 on {sup, _}) and worker gen_server ---------------

init({sup, {sup, Path, _, Strategy, MaxRestarts, Children}}) ->
    counted(Path),
    ets:insert(?STARTS, {{pid, self()}, name(Path)}),
    Flags = #{strategy => Strategy, intensity => MaxRestarts, period => ?PERIOD_S},
    {ok, {Flags, [child_spec(C) || C <- Children]}};
init({worker, Path}) ->
    counted(Path),
    register(name(Path), self()),
    {ok, Path}.

child_spec({worker, Path, Restart}) ->
    #{id => id(Path), restart => Restart, shutdown => 5000, type => worker,
      start => {gen_server, start_link, [?MODULE, {worker, Path}, []]}};
child_spec({sup, Path, Restart, _, _, _} = Tree) ->
    #{id => id(Path), restart => Restart, shutdown => infinity, type => supervisor,
      start => {supervisor, start_link, [{local, name(Path)}, ?MODULE, {sup, Tree}]}}.

handle_call(_Request, _From, Path) -> {reply, ok, Path}.

handle_cast(crash, Path) -> {stop, {crashed, Path}, Path};
handle_cast(normal, Path) -> {stop, normal, Path}.

handle_info(_Message, Path) -> {noreply, Path}.
