using System.Buffers;
using System.Collections;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Uring.Native;

namespace Uring.Transport.Internal;

// The connection is its own feature collection, as Kestrel's transports do: the features Kestrel
// reads on every connection are fields, anything else goes to a small list.
internal sealed partial class UringConnection : IFeatureCollection,
    IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature, IMemoryPoolFeature,
    IConnectionLifetimeFeature, IConnectionEndPointFeature, IUringConnectionFeature
{
    private static readonly Type[] s_ownFeatures =
    [
        typeof(IConnectionIdFeature), typeof(IConnectionTransportFeature), typeof(IConnectionItemsFeature),
        typeof(IMemoryPoolFeature), typeof(IConnectionLifetimeFeature), typeof(IConnectionEndPointFeature),
        typeof(IUringConnectionFeature),
    ];

    private List<KeyValuePair<Type, object>>? _extraFeatures;
    private IDictionary<object, object?>? _items;
    private int _featureRevision;

    public override IFeatureCollection Features => this;

    public override IDictionary<object, object?> Items
    {
        get => _items ??= new ConnectionItems();
        set => _items = value;
    }

    MemoryPool<byte> IMemoryPoolFeature.MemoryPool => _options.Pool;

    void IConnectionLifetimeFeature.Abort() =>
        Abort(new ConnectionAbortedException("The connection was aborted by the application via IConnectionLifetimeFeature.Abort()."));

    bool IFeatureCollection.IsReadOnly => false;

    int IFeatureCollection.Revision => _featureRevision;

    object? IFeatureCollection.this[Type key]
    {
        get
        {
            if (Array.IndexOf(s_ownFeatures, key) >= 0) return this;
            if (_extraFeatures is not null)
                foreach (var pair in _extraFeatures)
                    if (pair.Key == key) return pair.Value;
            return null;
        }
        set
        {
            _featureRevision++;
            _extraFeatures ??= new List<KeyValuePair<Type, object>>();
            int index = _extraFeatures.FindIndex(p => p.Key == key);
            if (value is null)
            {
                if (index >= 0) _extraFeatures.RemoveAt(index);
            }
            else if (index >= 0)
            {
                _extraFeatures[index] = new(key, value);
            }
            else
            {
                _extraFeatures.Add(new(key, value));
            }
        }
    }

    TFeature? IFeatureCollection.Get<TFeature>() where TFeature : default =>
        (TFeature?)((IFeatureCollection)this)[typeof(TFeature)];

    void IFeatureCollection.Set<TFeature>(TFeature? instance) where TFeature : default =>
        ((IFeatureCollection)this)[typeof(TFeature)] = instance;

    IEnumerator<KeyValuePair<Type, object>> IEnumerable<KeyValuePair<Type, object>>.GetEnumerator()
    {
        foreach (Type type in s_ownFeatures)
            yield return new(type, this);
        if (_extraFeatures is not null)
            foreach (var pair in _extraFeatures)
                yield return pair;
    }

    IEnumerator IEnumerable.GetEnumerator() => ((IEnumerable<KeyValuePair<Type, object>>)this).GetEnumerator();
}
