namespace Uring.Transport.Internal;

/// <summary>A loop's idle operations of one type, reused so that the steady state allocates none. Loop thread only.</summary>
internal sealed class OperationPool<T>(Func<T> create) where T : KernelOperation
{
    private const int MaxIdle = 1024; // beyond a burst's worth, idle ones are left to the GC
    private readonly Stack<T> _idle = new();

    public T Rent() => _idle.TryPop(out T? operation) ? operation : create();

    /// <summary>Back to the pool: only an operation that is not in the kernel (after its final completion, or a failed submit).</summary>
    public void Return(T operation)
    {
        if (_idle.Count < MaxIdle) _idle.Push(operation);
    }
}
