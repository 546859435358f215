namespace Uring.Transport;

/// <summary>
/// How the kernel picks the I/O loop for a new TCP connection when each loop has its own listening
/// socket (<see cref="UringTransportOptions.ListenerSharding"/>; <see cref="UringTransportOptions.ListenerSteering"/>).
/// </summary>
public enum ListenerSteering
{
    /// <summary>
    /// To the loop bound to the CPU that received the connection's first packet, when every loop is
    /// bound to a CPU of its own (<see cref="LoopAffinity"/>): the connection's packets are then
    /// handled on the CPU whose loop serves it. Connections received on a CPU without a loop, or
    /// when the loops are not bound one per CPU, are spread by flow hash. The default.
    /// </summary>
    Auto = 0,

    /// <summary>Always spread by the connection's flow hash, whatever CPU received it.</summary>
    Hash = 1,
}
